#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingWire

/// `starling up` / `down` with the `ssh` provider: copies this `starling` executable to each
/// host, starts the head on the first host and a node on each other one (in the background,
/// logging to files there), and hands the cluster token from the head to the nodes and to this
/// machine. Remote files live in `~/.starling/remote/<cluster>/<host>/` on each host.
enum SSHLauncher {
    struct Member: Codable {
        var host: String
        var pid: Int32
        var directory: String
    }

    static func up(_ config: ClusterConfig, ssh: ClusterConfig.SSH, cli: String) async throws {
        let state = config.stateDirectory
        if FileManager.default.fileExists(atPath: state + "/members.json") {
            throw CLIError("cluster \(config.name) is already up (\(state)/members.json); run `starling down` first")
        }
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? FileManager.default.createDirectory(atPath: (config.tokenFile as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var members: [Member] = []
        do {
            let headHost = ssh.hosts[0]
            let headAddress = "\(headHost):\(config.headPort)"
            for (index, host) in ssh.hosts.enumerated() {
                let directory = ".starling/remote/\(config.name)/\(host)"
                let quoted = quote(directory)
                // Recorded before anything is copied, so a failed `up` (or `down`) cleans this host too.
                members.append(Member(host: host, pid: 0, directory: directory))
                try save(members, state)
                // The binary travels on ssh's stdin: no scp or sftp needed on the host.
                _ = try run(ssh, host, "mkdir -p \(quoted) && chmod 700 \(quoted) && cat > \(quoted)/starling.new && chmod 755 \(quoted)/starling.new && mv \(quoted)/starling.new \(quoted)/starling",
                            input: cli)
                if index > 0 {
                    let token = try Data(contentsOf: URL(fileURLWithPath: config.tokenFile))
                    _ = try run(ssh, host, "umask 077 && cat > \(quoted)/token", data: token)
                }
                let arguments = config.startArguments(head: index == 0, headAddress: headAddress, host: host, tokenFile: "\(directory)/token")
                let log = "\(directory)/\(index == 0 ? "head" : "node").log"
                // Only the one command goes to the background, with every standard stream
                // redirected: a backgrounded list would keep ssh's session open.
                let started = try run(ssh, host, "cd ~; STARLING_LOG=${STARLING_LOG:-info} nohup \(quoted)/starling \(arguments.map(quote).joined(separator: " ")) > \(quote(log)) 2>&1 < /dev/null & echo $!")
                // The last line: a login shell may print something first.
                guard let last = started.split(separator: "\n").last, let pid = Int32(last.trimmingCharacters(in: .whitespaces)) else {
                    throw CLIError("\(host): starting starling printed no pid: \(started)")
                }
                members[members.count - 1].pid = pid
                try save(members, state)
                if index == 0 {
                    // The head makes the token; this machine and the nodes get a copy.
                    try await waitRemote(ssh, host, log: log, containing: "starling head listening at ")
                    let token = try run(ssh, host, "cat \(quoted)/token")
                    guard FileManager.default.createFile(atPath: config.tokenFile, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600]) else {
                        throw CLIError("cannot write the cluster token to \(config.tokenFile)")
                    }
                }
            }
            try await waitForNodes(ssh.hosts.count, address: headAddress, tokenFile: config.tokenFile)
            print("cluster \(config.name) is up: \(ssh.hosts.count) node(s) alive on \(ssh.hosts.joined(separator: ", ")), head at tcp://\(headAddress)")
            print("use it with: export STARLING_ADDRESS=tcp://\(headAddress) STARLING_TOKEN_FILE=\(config.tokenFile)")
        } catch {
            let (_, failed) = stop(ssh, members)
            if failed.isEmpty { try? FileManager.default.removeItem(atPath: state) } else { try? save(failed.map(\.member), state) }
            throw error
        }
    }

    static func down(_ config: ClusterConfig, ssh: ClusterConfig.SSH) throws {
        let state = config.stateDirectory
        guard let data = FileManager.default.contents(atPath: state + "/members.json"),
              let members = try? JSONDecoder().decode([Member].self, from: data) else {
            throw CLIError("cluster \(config.name) is not up (no \(state)/members.json)")
        }
        let (stopped, failed) = stop(ssh, members)
        guard failed.isEmpty else {
            // The hosts that could not be reached stay recorded: `down` again retries them.
            try save(failed.map(\.member), state)
            throw CLIError("cluster \(config.name): \(stopped) process(es) stopped; could not stop on " +
                           failed.map { "\($0.member.host) (\($0.error))" }.joined(separator: "; ") + "; run `starling down` again")
        }
        try? FileManager.default.removeItem(atPath: state)
        print("cluster \(config.name) is down: \(stopped) process(es) stopped on \(Set(members.map(\.host)).count) host(s), their files removed")
    }

    /// SIGTERM to each recorded process that still runs that host's starling, SIGKILL after
    /// 15 s, then removes the host's files. Returns how many were running, and the hosts that
    /// could not be reached.
    @discardableResult
    static func stop(_ ssh: ClusterConfig.SSH, _ members: [Member]) -> (stopped: Int, failed: [(member: Member, error: String)]) {
        var stopped = 0
        var failed: [(Member, String)] = []
        for member in members.reversed() {
            let script = """
            pid=\(member.pid); ran=0
            if [ "$pid" -gt 0 ] && grep -q starling /proc/$pid/cmdline 2>/dev/null; then
              ran=1; kill -TERM $pid
              for i in $(seq 150); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
              kill -KILL $pid 2>/dev/null
            fi
            rm -rf \(quote(member.directory)); echo $ran
            """
            do {
                if try run(ssh, member.host, script).split(separator: "\n").last == "1" { stopped += 1 }
            } catch {
                failed.append((member, "\(error)"))
            }
        }
        return (stopped, failed)
    }

    private static func save(_ members: [Member], _ state: String) throws {
        try JSONEncoder().encode(members).write(to: URL(fileURLWithPath: state + "/members.json"))
    }

    /// Runs `command` on `host` with ssh; stdin from the file `input` or from `data`. Returns
    /// its stdout; a failure names the host and what ssh or the command said.
    static func run(_ ssh: ClusterConfig.SSH, _ host: String, _ command: String, input: String? = nil, data: Data? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        // Keepalives: a host that drops mid-command fails the command within ~15 s.
        var arguments = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
                         "-o", "ServerAliveCountMax=3", "-p", String(ssh.port)]
        if let key = ssh.key { arguments += ["-i", key, "-o", "IdentitiesOnly=yes"] }
        arguments += ssh.options + ["\(ssh.user)@\(host)", command]
        process.arguments = arguments
        // stderr goes to a file: with two pipes read one after the other, ssh blocks when the
        // unread one fills.
        let errorPath = NSTemporaryDirectory() + "starling-ssh-stderr-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: errorPath, contents: nil, attributes: [.posixPermissions: 0o600]),
              let errorFile = FileHandle(forWritingAtPath: errorPath) else {
            throw CLIError("cannot create \(errorPath) for ssh's messages")
        }
        defer {
            try? errorFile.close()
            try? FileManager.default.removeItem(atPath: errorPath)
        }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errorFile
        var feeder: Pipe?
        if let input {
            guard let file = FileHandle(forReadingAtPath: input) else { throw CLIError("cannot read \(input) to copy it to \(host)") }
            process.standardInput = file
        } else if data != nil {
            feeder = Pipe()
            process.standardInput = feeder
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        do { try process.run() } catch { throw CLIError("cannot run ssh: \(error) (apt-get install openssh-client)") }
        if let feeder, let data {
            feeder.fileHandleForWriting.write(data)
            try? feeder.fileHandleForWriting.close()
        }
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let err = FileManager.default.contents(atPath: errorPath) ?? Data()
        guard process.terminationStatus == 0 else {
            let said = String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw CLIError("ssh \(ssh.user)@\(host) failed (exit \(process.terminationStatus)): \(said.isEmpty ? "no message" : said)")
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func waitRemote(_ ssh: ClusterConfig.SSH, _ host: String, log: String, containing text: String) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        var content = ""
        while ContinuousClock.now < deadline {
            content = (try? run(ssh, host, "cat \(log) 2>/dev/null || true")) ?? ""
            if content.contains(text) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("\(host): no \"\(text)\" in \(log) after 30 s: \(content.suffix(600))")
    }

    private static func waitForNodes(_ count: Int, address: String, tokenFile: String) async throws {
        let token = try ClusterToken.load(from: tokenFile)
        let head = try await RPCClient.connect(to: Address.parse(address), token: token, name: "up")
        defer { head.close() }
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try await head.call(HeadRPC.listNodes, ListNodesRequest()).nodes.filter({ $0.state == .alive }).count >= count { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CLIError("fewer than \(count) nodes registered within 60 s; see the logs in ~/.starling/remote/ on the hosts")
    }

    /// Single-quotes an argument for the remote shell.
    static func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
