#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Processes as /proc shows them: parents, environments, resident memory. For the node's worker
/// reports, the benchmarks' memory figures and the tests' leak checks.
public enum ProcessTable {
    /// Reads a /proc file to its end with read(2) (they report size 0, so size-based readers
    /// see nothing).
    public static func read(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// Every process id now.
    public static func allPIDs() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    }

    /// The parent of `pid`, if it still exists.
    public static func parent(of pid: pid_t) -> pid_t? {
        let stat = read("/proc/\(pid)/stat")
        // Fields after the command name (which may hold spaces and parentheses) follow the last ')'.
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        return fields.count > 1 ? pid_t(String(decoding: fields[1], as: UTF8.self)) : nil
    }

    /// Processes whose chain of parents reaches `root`.
    public static func descendants(of root: pid_t) -> [pid_t] {
        var parents: [pid_t: pid_t] = [:]
        for pid in allPIDs() { parents[pid] = parent(of: pid) }
        return parents.keys.filter { pid in
            var current = parents[pid]
            while let next = current, next > 1 {
                if next == root { return true }
                current = parents[next]
            }
            return false
        }
    }

    /// Processes whose environment holds a variable starting with `prefix` ("NAME=value...").
    public static func withEnvironment(prefix: String) -> [pid_t] {
        let marker = Array(prefix.utf8)
        return allPIDs().filter { pid in
            read("/proc/\(pid)/environ").split(separator: 0).contains { $0.starts(with: marker) }
        }
    }

    /// Resident memory of `pid` in bytes (0 when it is gone).
    public static func residentBytes(_ pid: pid_t) -> UInt64 {
        let status = String(decoding: read("/proc/\(pid)/status"), as: UTF8.self)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = UInt64(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb * 1024
    }

    /// True while `pid` exists and is not a zombie (exited, not yet reaped).
    public static func isRunning(_ pid: pid_t) -> Bool {
        let stat = read("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return false }
        return stat[close + 2] != UInt8(ascii: "Z")
    }
}
