#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A minimal leveled logger writing one line per event to standard error.
///
/// The level comes from `STARLING_LOG` (`debug`, `info`, `warning`, `error`; default `warning`).
/// ```swift
/// let log = Logger(label: "head")
/// log.info("node \(id) joined")
/// ```
public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public let label: String

    /// The process-wide threshold, read once from `STARLING_LOG`.
    public static let threshold: Level = {
        switch ProcessInfo.processInfo.environment["STARLING_LOG"]?.lowercased() {
        case "debug": return .debug
        case "info": return .info
        case "error": return .error
        default: return .warning
        }
    }()

    public init(label: String) { self.label = label }

    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }

    public func isEnabled(_ level: Level) -> Bool { level >= Logger.threshold }

    private func log(_ level: Level, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var tm = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &tm)
        let stamp = String(format: "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, Int(now.tv_nsec / 1_000_000))
        let line = "\(stamp) [\(level)] \(label)[\(getpid())]: \(message())\n"
        // One write(2) per line keeps lines from different threads whole.
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
