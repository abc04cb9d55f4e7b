#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore

/// The directory of one Starling process's session: token, sockets, worker logs, cached
/// executables. Named `/tmp/starling-<pid>-<id>` so that the directory of a process that died
/// without cleaning up (SIGKILL) is recognised and removed by the next one to start.
public struct SessionDirectory: Sendable {
    public let path: String
    /// Where an embedded cluster or a head keeps its cluster token.
    public var tokenFile: String { path + "/token" }
    public var logDir: String { path + "/logs" }

    /// Removes session directories, and object-store segments (`/dev/shm/starling-<pid>-…`),
    /// whose process is gone.
    public static func removeStale() {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [] where entry.hasPrefix("starling-") {
            let fields = entry.split(separator: "-")
            guard fields.count == 3, let pid = pid_t(fields[1]), isGone(pid) else { continue }
            SessionDirectory(path: "/tmp/" + entry).remove()
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [] where entry.hasPrefix("starling-") {
            let fields = entry.split(separator: "-")
            guard fields.count == 4, let pid = pid_t(fields[1]), isGone(pid) else { continue }
            shm_unlink("/" + entry)
        }
    }

    private static func isGone(_ pid: pid_t) -> Bool {
        pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Creates a fresh directory (mode 0700) for this process.
    public static func create() throws -> SessionDirectory {
        removeStale()
        // ipc socket paths are limited to 107 bytes: keep the directory short.
        let path = "/tmp/starling-\(getpid())-\(UniqueID.random().short)"
        guard mkdir(path, 0o700) == 0 else {
            throw SessionError("cannot create the session directory \(path): \(String(cString: strerror(errno)))")
        }
        let session = SessionDirectory(path: path)
        try? FileManager.default.createDirectory(atPath: session.logDir, withIntermediateDirectories: true)
        return session
    }

    /// Removes the directory; retries because sockets inside may vanish while it is walked.
    public func remove() {
        for _ in 0..<5 {
            if (try? FileManager.default.removeItem(atPath: path)) != nil || !FileManager.default.fileExists(atPath: path) { return }
            usleep(20_000)
        }
    }
}

/// A session directory could not be made.
public struct SessionError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
