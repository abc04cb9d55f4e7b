#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingNode
import StarlingWire

/// `starling up` / `down` (cluster configs) and `starling stop` (processes `start` recorded).
enum ClusterLauncher {
    /// Brings up the config's head, then its worker nodes, as background `starling start`
    /// processes; returns once every node has registered with the head.
    static func up(_ config: ClusterConfig, cli: String) async throws {
        if let ssh = config.ssh { return try await SSHLauncher.up(config, ssh: ssh, cli: cli) }
        let state = config.stateDirectory
        if let alive = livePIDs(in: state), !alive.isEmpty {
            throw CLIError("cluster \(config.name) is already up (processes \(alive.map(String.init).joined(separator: ", "))); run `starling down` first")
        }
        try? FileManager.default.removeItem(atPath: state)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? FileManager.default.createDirectory(atPath: (config.tokenFile as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var pids: [Int32] = []
        do {
            let head = try launch(cli, config.startArguments(head: true, headAddress: ""), log: state + "/head.log")
            pids.append(head.processIdentifier)
            try record(pids, in: state)
            let headLine = try await waitForLine(state + "/head.log", containing: "starling head listening at ", process: head)
            let address = String(headLine.split(separator: " ")[4])
            let dashboard = try? await waitForLine(state + "/head.log", containing: "starling dashboard at ", process: head, timeout: .seconds(2))
            for index in 0..<config.workerCount {
                let node = try launch(cli, config.startArguments(head: false, headAddress: address), log: state + "/node-\(index).log")
                pids.append(node.processIdentifier)
                try record(pids, in: state)
            }
            try await waitForNodes(config.workerCount + 1, address: address, tokenFile: config.tokenFile, state: state)
            let url = dashboard.map { String($0.split(separator: " ")[3]) } ?? "none"
            try "\(address)\n\(url)\n".write(toFile: state + "/address", atomically: true, encoding: .utf8)
            print("cluster \(config.name) is up: \(config.workerCount + 1) node(s) alive, head at \(address), dashboard \(url)")
            print("use it with: export STARLING_ADDRESS=\(address) STARLING_TOKEN_FILE=\(config.tokenFile)")
        } catch {
            stop(pids)
            try? FileManager.default.removeItem(atPath: state)
            throw error
        }
    }

    /// Stops every process `up` started for the config and removes their files.
    static func down(_ config: ClusterConfig) async throws {
        if let ssh = config.ssh { return try SSHLauncher.down(config, ssh: ssh) }
        let state = config.stateDirectory
        guard let pids = recorded(in: state) else {
            throw CLIError("cluster \(config.name) is not up (no \(state)/pids)")
        }
        let stopped = stop(pids)
        try? FileManager.default.removeItem(atPath: state)
        print("cluster \(config.name) is down: \(stopped) process(es) stopped, \(state) removed")
    }

    // MARK: - Processes started by `starling start`

    static var startedDirectory: String { ClusterConfig.home + "/.starling/started" }

    /// Records this process (pid → session directory) for `stop`; returns the record's path.
    static func recordStart(session: String) -> String {
        try? FileManager.default.createDirectory(atPath: startedDirectory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        let path = startedDirectory + "/\(getpid())"
        try? session.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Stops every recorded `starling start` process still running; removes the records.
    static func stopRecorded() -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: startedDirectory)) ?? []
        let pids = entries.compactMap { Int32($0) }
        let stopped = stop(pids)
        for entry in entries { try? FileManager.default.removeItem(atPath: startedDirectory + "/" + entry) }
        return stopped
    }

    // MARK: - Processes

    private static func launch(_ cli: String, _ arguments: [String], log: String) throws -> Process {
        guard FileManager.default.createFile(atPath: log, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw CLIError("cannot create the log file \(log)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cli)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["STARLING_LOG"] = environment["STARLING_LOG"] ?? "info"
        process.environment = environment
        let handle = FileHandle(forWritingAtPath: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    private static func record(_ pids: [Int32], in state: String) throws {
        try pids.map(String.init).joined(separator: "\n").write(toFile: state + "/pids", atomically: true, encoding: .utf8)
    }

    static func recorded(in state: String) -> [Int32]? {
        guard let text = try? String(contentsOfFile: state + "/pids", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    private static func livePIDs(in state: String) -> [Int32]? {
        recorded(in: state).map { $0.filter(isStarling) }
    }

    /// True when `pid` runs a starling executable (a recorded pid may have been reused).
    static func isStarling(_ pid: Int32) -> Bool {
        let command = ProcessTable.read("/proc/\(pid)/cmdline").split(separator: 0).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        return command.hasSuffix("/starling") || command == "starling"
    }

    /// SIGTERM, then SIGKILL after 15 s; returns how many were running.
    @discardableResult
    static func stop(_ pids: [Int32]) -> Int {
        let running = pids.filter(isStarling)
        for pid in running { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline, running.contains(where: { ProcessTable.isRunning($0) && isStarling($0) }) {
            usleep(50_000)
            for pid in running { var status: Int32 = 0; _ = waitpid(pid, &status, WNOHANG) }
        }
        for pid in running where ProcessTable.isRunning(pid) && isStarling(pid) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        // Session directories and segments of processes that had to be killed.
        SessionDirectory.removeStale()
        return running.count
    }

    private static func waitForLine(_ log: String, containing text: String, process: Process,
                                    timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let content = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let line = content.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            if !process.isRunning {
                throw CLIError("\(process.arguments?.joined(separator: " ") ?? "starling start") exited with status \(process.terminationStatus): \(content.suffix(600))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CLIError("no \"\(text)\" in \(log) after \(timeout)")
    }

    /// Every node learns of the others at a heartbeat after they registered (it logs "sees N
    /// live nodes"); until then, work submitted at once would not spill to the newest ones.
    private static func waitForViews(_ count: Int, state: String) async throws {
        let logs = ((try? FileManager.default.contentsOfDirectory(atPath: state)) ?? []).filter { $0.hasSuffix(".log") }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let behind = logs.filter { !(((try? String(contentsOfFile: state + "/" + $0, encoding: .utf8)) ?? "").contains("sees \(count) live nodes")) }
            if behind.isEmpty { return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    private static func waitForNodes(_ count: Int, address: String, tokenFile: String, state: String) async throws {
        let token = try ClusterToken.load(from: tokenFile)
        let head = try await RPCClient.connect(to: Address.parse(address), token: token, name: "up")
        defer { head.close() }
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let alive = try await head.call(HeadRPC.listNodes, ListNodesRequest()).nodes.filter { $0.state == .alive }.count
            if alive >= count {
                try await waitForViews(count, state: state)
                return
            }
            if let pids = recorded(in: state), let dead = pids.first(where: { !ProcessTable.isRunning($0) }) {
                throw CLIError("node process \(dead) exited before registering; see the logs in \(state)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CLIError("fewer than \(count) nodes registered within 60 s; see the logs in \(state)")
    }
}
