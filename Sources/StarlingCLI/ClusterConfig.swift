import Foundation

/// A cluster config for `starling up` / `starling down` (JSON: no Swift package dependency
/// parses YAML). Every field is checked; errors name the field and the expected form.
///
/// ```json
/// { "name": "local-3", "provider": { "type": "local" },
///   "head": { "port": 6380, "dashboard_port": 8266, "resources": { "CPU": 1 } },
///   "workers": { "count": 2, "resources": { "CPU": 1 } },
///   "token_file": "~/.starling/local-3.token" }
/// ```
/// The `ssh` provider runs the head on the first of `provider.hosts` and a node on each other
/// one (`workers.count` is then the number of other hosts):
/// ```json
/// { "name": "ssh-3", "provider": { "type": "ssh", "user": "root", "key": "~/.ssh/id_ed25519",
///                                  "hosts": ["10.0.0.1", "10.0.0.2", "10.0.0.3"] },
///   "head": { "port": 6379 }, "workers": { "resources": { "CPU": 8 } } }
/// ```
struct ClusterConfig {
    /// How `up` reaches the hosts of the `ssh` provider.
    struct SSH {
        var user: String
        var key: String?
        var hosts: [String]
        var port = 22
        /// Extra `ssh` options (e.g. ["-o", "StrictHostKeyChecking=no"]).
        var options: [String] = []
    }

    struct Node {
        var resources: [String: Double]?
        var objectStoreMemory: UInt64?
    }

    var name: String
    var provider: String
    var ssh: SSH?
    var host = "127.0.0.1"
    var headPort = 6379
    var dashboardPort = 8265
    var head = Node()
    var workerCount = 0
    var workers = Node()
    var tokenFile: String

    /// Where `up` keeps the cluster's process ids and logs, and `down` finds them.
    var stateDirectory: String { Self.home + "/.starling/clusters/" + name }

    static var home: String { ProcessInfo.processInfo.environment["HOME"] ?? "/tmp" }

    static func load(_ path: String) throws -> ClusterConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read the cluster config \(path)") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw CLIError("\(path) is not valid JSON: \(error.localizedDescription)")
        }
        guard let root = object as? [String: Any] else { throw CLIError("\(path): expected a JSON object at the top") }
        return try ClusterConfig(root, file: path)
    }

    init(_ root: [String: Any], file: String) throws {
        func fail(_ field: String, _ expected: String, _ found: Any?) -> CLIError {
            CLIError("\(file): \(field): expected \(expected), found \(found.map { "\($0)" } ?? "nothing")")
        }
        let known: Set<String> = ["name", "provider", "host", "head", "workers", "token_file"]
        if let unknown = root.keys.first(where: { !known.contains($0) }) {
            throw CLIError("\(file): unknown field \"\(unknown)\" (expected \(known.sorted().joined(separator: ", ")))")
        }
        guard let name = root["name"] as? String, !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw fail("name", "a non-empty string of letters, digits, - and _", root["name"])
        }
        self.name = name
        guard let provider = root["provider"] as? [String: Any], let type = provider["type"] as? String else {
            throw fail("provider", "an object with \"type\": \"local\" or \"ssh\"", root["provider"])
        }
        guard type == "local" || type == "ssh" else {
            throw CLIError("\(file): provider.type: expected \"local\" or \"ssh\", found \"\(type)\"")
        }
        self.provider = type
        let providerFields: Set<String> = type == "local" ? ["type"] : ["type", "user", "key", "hosts", "port", "ssh_options"]
        if let unknown = provider.keys.first(where: { !providerFields.contains($0) }) {
            throw CLIError("\(file): provider: unknown field \"\(unknown)\" for type \(type) (expected \(providerFields.sorted().joined(separator: ", ")))")
        }
        if type == "ssh" {
            guard let hosts = provider["hosts"] as? [String], !hosts.isEmpty,
                  hosts.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("-") && !$0.hasPrefix(".") && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) } }) else {
                throw fail("provider.hosts", "a non-empty list of host names or addresses (letters, digits, '.', '-', ':'; the first runs the head)", provider["hosts"])
            }
            guard Set(hosts).count == hosts.count else { throw fail("provider.hosts", "distinct hosts", hosts) }
            let user = provider["user"] as? String ?? ProcessInfo.processInfo.environment["USER"] ?? "root"
            guard !user.isEmpty, user.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else { throw fail("provider.user", "a user name", provider["user"]) }
            var ssh = SSH(user: user, hosts: hosts)
            if let key = provider["key"] {
                guard let text = key as? String, !text.isEmpty else { throw fail("provider.key", "a path to a private key", key) }
                ssh.key = text.hasPrefix("~/") ? Self.home + text.dropFirst() : text
            }
            if let port = provider["port"] {
                guard let number = port as? Int, (1...65535).contains(number) else { throw fail("provider.port", "an ssh port 1-65535", port) }
                ssh.port = number
            }
            if let options = provider["ssh_options"] {
                guard let list = options as? [String] else { throw fail("provider.ssh_options", "a list of strings", options) }
                ssh.options = list
            }
            self.ssh = ssh
            host = hosts[0]
        }
        if let host = root["host"] {
            guard let text = host as? String, !text.isEmpty else { throw fail("host", "an address string such as \"127.0.0.1\"", host) }
            guard ssh == nil else { throw CLIError("\(file): host: not used with the ssh provider (each node listens on its own host in provider.hosts)") }
            self.host = text
        }
        func port(_ value: Any?, _ field: String) throws -> Int? {
            guard let value else { return nil }
            guard let number = value as? Int, (0...65535).contains(number) else { throw fail(field, "a port number 0-65535", value) }
            return number
        }
        func node(_ value: Any?, _ field: String, allowed: Set<String>) throws -> (Node, [String: Any]) {
            guard let value else { return (Node(), [:]) }
            guard let object = value as? [String: Any] else { throw fail(field, "an object", value) }
            if let unknown = object.keys.first(where: { !allowed.contains($0) }) {
                throw CLIError("\(file): \(field): unknown field \"\(unknown)\" (expected \(allowed.sorted().joined(separator: ", ")))")
            }
            var result = Node()
            if let resources = object["resources"] {
                guard let map = resources as? [String: Any] else { throw fail("\(field).resources", "an object of name: amount", resources) }
                var parsed: [String: Double] = [:]
                for (name, amount) in map {
                    guard let number = amount as? Double, number >= 0, number.isFinite else {
                        throw fail("\(field).resources.\(name)", "a non-negative number", amount)
                    }
                    parsed[name] = number
                }
                result.resources = parsed
            }
            if let memory = object["object_store_memory"] {
                guard let bytes = memory as? Int, bytes > 0 else { throw fail("\(field).object_store_memory", "a positive number of bytes", memory) }
                result.objectStoreMemory = UInt64(bytes)
            }
            return (result, object)
        }
        let (head, headObject) = try node(root["head"], "head", allowed: ["port", "dashboard_port", "resources", "object_store_memory"])
        self.head = head
        headPort = try port(headObject["port"], "head.port") ?? 6379
        dashboardPort = try port(headObject["dashboard_port"], "head.dashboard_port") ?? 8265
        let (workers, workerObject) = try node(root["workers"], "workers", allowed: ["count", "resources", "object_store_memory"])
        self.workers = workers
        if let count = workerObject["count"] {
            guard let number = count as? Int, (0...64).contains(number) else { throw fail("workers.count", "an integer 0-64", count) }
            if let ssh, number != ssh.hosts.count - 1 {
                throw CLIError("\(file): workers.count: with the ssh provider it is one node per host after the first (\(ssh.hosts.count - 1)), found \(number)")
            }
            workerCount = number
        }
        if let ssh { workerCount = ssh.hosts.count - 1 }
        if let token = root["token_file"] {
            guard let text = token as? String, !text.isEmpty else { throw fail("token_file", "a path", token) }
            tokenFile = text.hasPrefix("~/") ? Self.home + text.dropFirst() : text
        } else {
            tokenFile = Self.home + "/.starling/\(name).token"
        }
    }

    /// `starling start` arguments of one member (`host`: where it listens; `tokenFile`: its
    /// token's path where it runs).
    func startArguments(head: Bool, headAddress: String, host: String? = nil, tokenFile: String? = nil) -> [String] {
        let node = head ? self.head : workers
        var arguments = ["start"]
        arguments += head ? ["--head", "--port", String(headPort), "--dashboard-port", String(dashboardPort)]
                          : ["--address", headAddress]
        arguments += ["--host", host ?? self.host, "--token-file", tokenFile ?? self.tokenFile]
        if let resources = node.resources {
            arguments += ["--resources", resources.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")]
        }
        if let memory = node.objectStoreMemory { arguments += ["--object-store-memory", String(memory)] }
        return arguments
    }
}
