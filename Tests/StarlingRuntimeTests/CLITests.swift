#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@Suite("starling up/down and CLI errors (real processes)", .serialized)
struct CLITests {
    @Test("up brings up 3 nodes from a config, status shows them alive, a job runs tasks on all three, down leaves nothing behind")
    func upAndDown() async throws {
        let cli = try builtProduct("starling").path
        let directory = NSTemporaryDirectory() + "starling-up-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let name = "test-\(getpid())"
        let config = directory + "/local-3.json"
        try """
        { "name": "\(name)", "provider": { "type": "local" },
          "head": { "port": 0, "dashboard_port": 0, "resources": { "CPU": 1 } },
          "workers": { "count": 2, "resources": { "CPU": 1 } },
          "token_file": "\(directory)/token" }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let up = try await ChildProcessOutput.run(cli, ["up", config])
        let state = (ProcessInfo.processInfo.environment["HOME"] ?? "/tmp") + "/.starling/clusters/" + name
        let pids = ((try? String(contentsOfFile: state + "/pids", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
        defer { for pid in pids where isRunning(pid) { kill(pid, SIGKILL) } }
        #expect(up.status == 0 && up.output.contains("3 node(s) alive"), "\(up)")
        guard up.status == 0, let address = up.output.split(separator: " ").first(where: { $0.hasPrefix("tcp://") }) else { return }
        let headAddress = String(address.trimmingCharacters(in: CharacterSet(charactersIn: ",")))
        let status = try await ChildProcessOutput.run(cli, ["status", "--address", headAddress, "--token-file", directory + "/token"])
        #expect(status.output.hasPrefix("3 node(s) alive, 0 dead"), "\(status)")
        let ran = try await runScenario(["spread-all"], environment: ["STARLING_ADDRESS": headAddress, "STARLING_TOKEN_FILE": directory + "/token"])
        #expect(ran.hasPrefix("3 ") && ran.split(separator: ",").count == 3, "tasks ran on every node: \(ran)")
        // A second head on the same port fails naming the problem.
        let port = headAddress.split(separator: ":").last.map(String.init) ?? ""
        let clash = try await ChildProcessOutput.run(cli, ["start", "--head", "--port", port, "--token-file", directory + "/other-token", "--dashboard-port", "none"])
        #expect(clash.status != 0 && clash.error.contains("already in use"), "\(clash)")
        let down = try await ChildProcessOutput.run(cli, ["down", config])
        #expect(down.status == 0 && down.output.contains("3 process(es) stopped"), "\(down)")
        #expect(pids.count == 3 && pids.allSatisfy { !isRunning($0) }, "processes left after down: \(pids.filter(isRunning))")
        #expect(!FileManager.default.fileExists(atPath: state), "\(state) left after down")
        for pid in pids { try await expectNoLeftovers(of: pid) }
    }

    @Test("every command answers --help with its own usage")
    func helpPerCommand() async throws {
        let cli = try builtProduct("starling").path
        for command in ["start", "status", "memory", "logs", "list", "stop", "up", "down", "submit", "job"] {
            let help = try await ChildProcessOutput.run(cli, [command, "--help"])
            #expect(help.status == 0 && help.output.hasPrefix("starling \(command)"), "\(command): \(help)")
        }
        let unknown = try await ChildProcessOutput.run(cli, ["submit", "--frobnicate", "x"])
        #expect(unknown.status == 2 && unknown.error.contains("submit: unknown option --frobnicate"), "\(unknown)")
        // Heartbeats no more often than the silence that declares a node dead: every node would die.
        let directory = NSTemporaryDirectory() + "starling-cli-heartbeat-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let slow = try await ChildProcessOutput.run(cli, ["start", "--head", "--port", "0", "--dashboard-port", "none", "--token-file", directory + "/token",
                                                          "--heartbeat-interval", "10", "--node-timeout", "5"])
        #expect(slow.status == 2 && slow.error.contains("--heartbeat-interval") && slow.error.contains("shorter than --node-timeout"), "\(slow)")
        let tiny = try await ChildProcessOutput.run(cli, ["start", "--head", "--heartbeat-interval", "0.001"])
        #expect(tiny.status == 2 && tiny.error.contains("--heartbeat-interval 0.001 is not a number of seconds"), "\(tiny)")
    }

    @Test("a config with a bad field fails naming the field and the expected form")
    func badConfig() async throws {
        let cli = try builtProduct("starling").path
        let path = NSTemporaryDirectory() + "starling-bad-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try #"{"name": "bad", "provider": {"type": "local"}, "workers": {"count": "two"}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try await ChildProcessOutput.run(cli, ["up", path])
        #expect(run.status == 2 && run.error.contains("workers.count: expected an integer 0-64, found two"), "\(run)")
        try #"{"name": "bad", "provider": {"type": "local"}, "head": {"prot": 1}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        let typo = try await ChildProcessOutput.run(cli, ["up", path])
        #expect(typo.status == 2 && typo.error.contains("head: unknown field \"prot\""), "\(typo)")
    }
}
