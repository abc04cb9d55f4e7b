#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Three "hosts" in network namespaces (cluster/netns-hosts): a head on 10.77.0.1 and a node on
/// each of 10.77.0.2 and 10.77.0.3, every process started with `ip netns exec`.
@Suite("Multi-host cluster in network namespaces (real processes; root only)", .serialized)
struct MultiHostTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("cluster/netns-hosts").path

    @Test("head and two nodes on three hosts with distinct addresses (two listening on 0.0.0.0) run Examples/Pi across the hosts")
    func piAcrossHosts() async throws {
        let check = try await ChildProcessOutput.run(Self.script, ["check"])
        guard check.status == 0 else {
            print("multi-host test skipped: \(check.output)")
            return
        }
        let prefix = "st\(getpid() % 100_000)"
        let up = try await ChildProcessOutput.run(Self.script, ["up", "3", prefix])
        #expect(up.status == 0, "\(up)")
        let directory = NSTemporaryDirectory() + "starling-netns-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var members: [Process] = []
        defer {
            for member in members where member.isRunning { member.terminate() }
            for member in members { member.waitUntilExit() }
            _ = try? ChildProcessOutput.runBlocking(Self.script, ["down", "3", prefix])
            try? FileManager.default.removeItem(atPath: directory)
        }
        let cli = try builtProduct("starling").path
        let token = directory + "/token"
        func onHost(_ host: Int, _ executable: String, _ arguments: [String], log: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            // Info level: the test waits for the head's "sees 3 live nodes".
            process.arguments = ["netns", "exec", "\(prefix)-\(host)", "env", "STARLING_LOG=info", executable] + arguments
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
            return process
        }
        // The head and node 2 listen on every interface (0.0.0.0) and find the address others
        // reach them at themselves; node 3 names its address.
        members.append(try onHost(1, cli, ["start", "--head", "--host", "0.0.0.0", "--port", "6379", "--resources", "CPU=0",
                                           "--dashboard-port", "none", "--token-file", token], log: directory + "/head.log"))
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: token) { try await Task.sleep(for: .milliseconds(50)) }
        for host in 2...3 {
            members.append(try onHost(host, cli, ["start", "--address", "10.77.0.1:6379", "--host", host == 2 ? "0.0.0.0" : "10.77.0.\(host)",
                                                  "--resources", "CPU=2", "--token-file", token], log: directory + "/node\(host).log"))
        }
        var listed = ""
        for _ in 0..<100 {
            listed = (try? await ChildProcessOutput.run(cli, ["list", "nodes", "--address", "10.77.0.1:6379", "--token-file", token]).output) ?? ""
            if listed.components(separatedBy: "alive").count - 1 == 3 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        // The CLI runs outside the namespaces and reaches the head through the bridge.
        #expect(listed.contains("10.77.0.1") && listed.contains("10.77.0.2") && listed.contains("10.77.0.3") && !listed.contains("0.0.0.0"),
                "every node registered a reachable address: \(listed)")
        // The head's node schedules with its view of the others: wait until it has them all.
        for _ in 0..<100 where !((try? String(contentsOfFile: directory + "/head.log", encoding: .utf8)) ?? "").contains("sees 3 live nodes") {
            try await Task.sleep(for: .milliseconds(50))
        }
        // Drivers on host 1: a run of Examples/Pi, then two spread tasks held by a barrier until
        // both started (one on each worker host).
        let driver = ["env", "STARLING_ADDRESS=10.77.0.1:6379", "STARLING_TOKEN_FILE=\(token)"]
        let pi = try await ChildProcessOutput.run("/usr/sbin/ip", ["netns", "exec", "\(prefix)-1"] + driver + [try builtProduct("Pi").path])
        #expect(pi.status == 0 && pi.output.contains("π ≈ 3.14") && pi.output.contains("on 3 node(s)"), "\(pi)")
        // Spread places by the free resources nodes report in heartbeats: wait until the head
        // sees Pi's leases returned on both worker hosts, then one heartbeat more, for the
        // head's own node (which decides) to have that view too.
        for _ in 0..<100 {
            let status = (try? await ChildProcessOutput.run(cli, ["status", "--address", "10.77.0.1:6379", "--token-file", token]).output) ?? ""
            if status.components(separatedBy: "resources used: CPU 0/2").count - 1 == 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .milliseconds(600))
        let spread = try await ChildProcessOutput.run("/usr/sbin/ip", ["netns", "exec", "\(prefix)-1"] + driver + [try builtProduct("StarlingTestApp").path, "spread"])
        let spreadText = spread.output
        let used = spreadText.split(separator: "\n").first { $0.hasPrefix("RESULT ") }.map { String($0.dropFirst(7)) } ?? spreadText
        #expect(used.hasPrefix("2 ") && used.split(separator: ",").count == 2, "the two tasks ran on both worker hosts: \(used)")
    }

    @Test("starling up with the ssh provider: Debian's sshd on three hosts; head and nodes come up, a submitted job runs, down removes everything")
    func sshProvider() async throws {
        let check = try await ChildProcessOutput.run(Self.script, ["check"])
        guard check.status == 0 else {
            print("ssh provider test skipped: \(check.output)")
            return
        }
        // Another subnet than the test above, so the two sets of hosts never collide.
        let subnet = ["NETNS_SUBNET": "10.78.0"]
        let prefix = "ss\(getpid() % 100_000)"
        let directory = NSTemporaryDirectory() + "starling-ssh-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let up = try await ChildProcessOutput.run(Self.script, ["up", "3", prefix], environment: subnet)
        #expect(up.status == 0, "\(up)")
        defer {
            _ = try? ChildProcessOutput.runBlocking(Self.script, ["down", "3", prefix], environment: subnet)
            try? FileManager.default.removeItem(atPath: directory)
        }
        let sshd = try await ChildProcessOutput.run(Self.script, ["sshd", "3", prefix, directory], environment: subnet)
        guard sshd.status == 0 else {
            #expect(sshd.status == 77, "\(sshd)")
            print("ssh provider test skipped: \(sshd.output)")
            return
        }
        let name = "ssh3-\(getpid())"
        let config = directory + "/ssh-3.json"
        try """
        { "name": "\(name)",
          "provider": { "type": "ssh", "user": "root", "key": "\(directory)/id_ed25519",
                        "hosts": ["10.78.0.1", "10.78.0.2", "10.78.0.3"],
                        "ssh_options": ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"] },
          "head": { "port": 6379, "dashboard_port": 0, "resources": { "CPU": 1 } },
          "workers": { "resources": { "CPU": 1 } },
          "token_file": "\(directory)/token" }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let cli = try builtProduct("starling").path
        let started = try await ChildProcessOutput.run(cli, ["up", config])
        let sshdLog = (try? String(contentsOfFile: directory + "/sshd-1.log", encoding: .utf8)) ?? ""
        #expect(started.status == 0 && started.output.contains("3 node(s) alive on 10.78.0.1, 10.78.0.2, 10.78.0.3"), "\(started) sshd: \(sshdLog.suffix(1500))")
        let at = ["--address", "10.78.0.1:6379", "--token-file", directory + "/token"]
        if started.status == 0 {
            let listed = try await ChildProcessOutput.run(cli, ["list", "nodes", "--json"] + at).output
            for host in 1...3 { #expect(listed.contains("10.78.0.\(host)"), "\(listed)") }
            // A job submitted from this machine runs on the head's host and uses the nodes.
            let pi = try await ChildProcessOutput.run(cli, ["submit"] + at + [try builtProduct("Pi").path])
            #expect(pi.status == 0 && pi.output.contains("π ≈ 3.14"), "\(pi)")
        }
        let down = try await ChildProcessOutput.run(cli, ["down", config])
        #expect(down.status == 0 && down.output.contains("3 process(es) stopped on 3 host(s)"), "\(down)")
        let remote = ClusterLauncherPaths.home + "/.starling/remote/\(name)"
        let left = (try? FileManager.default.contentsOfDirectory(atPath: remote)) ?? []
        #expect(left.isEmpty, "files left on the hosts: \(left)")
        try? FileManager.default.removeItem(atPath: remote)
    }
}

enum ClusterLauncherPaths {
    static var home: String { ProcessInfo.processInfo.environment["HOME"] ?? "/tmp" }
}
