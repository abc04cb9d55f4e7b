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
struct ClusterConfig {
    struct Node {
        var resources: [String: Double]?
        var objectStoreMemory: UInt64?
    }

    var name: String
    var provider: String
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
        guard type == "local" else {
            throw CLIError("\(file): provider.type: \"\(type)\" is not supported by this build (expected \"local\"; the ssh provider is not done yet)")
        }
        self.provider = type
        if let host = root["host"] {
            guard let text = host as? String, !text.isEmpty else { throw fail("host", "an address string such as \"127.0.0.1\"", host) }
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
            workerCount = number
        }
        if let token = root["token_file"] {
            guard let text = token as? String, !text.isEmpty else { throw fail("token_file", "a path", token) }
            tokenFile = text.hasPrefix("~/") ? Self.home + text.dropFirst() : text
        } else {
            tokenFile = Self.home + "/.starling/\(name).token"
        }
    }

    /// `starling start` arguments of one member.
    func startArguments(head: Bool, headAddress: String) -> [String] {
        let node = head ? self.head : workers
        var arguments = ["start"]
        arguments += head ? ["--head", "--port", String(headPort), "--dashboard-port", String(dashboardPort)]
                          : ["--address", headAddress]
        arguments += ["--host", host, "--token-file", tokenFile]
        if let resources = node.resources {
            arguments += ["--resources", resources.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")]
        }
        if let memory = node.objectStoreMemory { arguments += ["--object-store-memory", String(memory)] }
        return arguments
    }
}
