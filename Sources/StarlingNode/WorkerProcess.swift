#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore

/// Starts worker processes from the job's executable and reaps them.
///
/// Uses `posix_spawn` with an empty signal mask and default handlers: a child started from
/// async Swift code would otherwise inherit blocked signals and ignore SIGTERM (PITFALLS.md).
/// Standard output and error go to a per-worker log file.
public enum WorkerProcess {
    public struct Spawned: Sendable {
        public let pid: pid_t
        public let logPath: String
    }

    enum SpawnError: Error, CustomStringConvertible {
        case failed(executable: String, errno: Int32)
        var description: String {
            switch self {
            case let .failed(executable, code):
                return "cannot start worker process \(executable): \(String(cString: strerror(code)))"
            }
        }
    }

    /// Starts `executable` with no signals blocked or ignored (a process started from a thread
    /// of Swift's pool would inherit its mask otherwise, and never see SIGTERM), stdin from
    /// /dev/null, stdout and stderr appended to `logPath`; optionally as the leader of a new
    /// process group (so the group can be signalled as one).
    public static func spawn(executable: String, arguments: [String] = [], environment: [String: String], logPath: String,
                             newProcessGroup: Bool = false) throws -> Spawned {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw SpawnError.failed(executable: executable, errno: rc) }
        return Spawned(pid: pid, logPath: logPath)
    }

    /// Reaps any exited children without blocking; returns (pid, description of how it ended).
    static func reapExited() -> [(pid: pid_t, how: String)] {
        var ended: [(pid_t, String)] = []
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { break }
            ended.append((pid, describe(status)))
        }
        return ended
    }

    public static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with code \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)\(signal == SIGKILL ? " (SIGKILL)" : signal == SIGSEGV ? " (SIGSEGV)" : "")"
    }

    /// The running executable's path (workers of an embedded cluster run the driver's binary).
    static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
