#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The host's CPU and memory use from /proc: CPU percent over the interval since the previous
/// sample (all cores), memory in use as total minus available.
struct HostStats {
    private var previousBusy: UInt64 = 0
    private var previousTotal: UInt64 = 0

    struct Sample {
        var cpuPercent: Double
        var memoryTotal: UInt64
        var memoryUsed: UInt64
        var loadAverage: Double
    }

    mutating func sample() -> Sample {
        var result = Sample(cpuPercent: 0, memoryTotal: 0, memoryUsed: 0, loadAverage: 0)
        // /proc/stat "cpu  user nice system idle iowait irq softirq steal …" (ticks).
        if let line = String(decoding: ProcessTable.read("/proc/stat"), as: UTF8.self).split(separator: "\n").first {
            let ticks = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
            if ticks.count >= 5 {
                let total = ticks.prefix(8).reduce(0, +)
                let idle = ticks[3] + ticks[4]
                let busy = total - idle
                if previousTotal > 0, total > previousTotal {
                    result.cpuPercent = 100 * Double(busy &- previousBusy) / Double(total - previousTotal)
                }
                previousBusy = busy
                previousTotal = total
            }
        }
        var available: UInt64 = 0
        for line in String(decoding: ProcessTable.read("/proc/meminfo"), as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kilobytes = UInt64(fields[1]) else { continue }
            if fields[0] == "MemTotal:" { result.memoryTotal = kilobytes * 1024 }
            if fields[0] == "MemAvailable:" { available = kilobytes * 1024 }
        }
        result.memoryUsed = result.memoryTotal > available ? result.memoryTotal - available : 0
        if let first = String(decoding: ProcessTable.read("/proc/loadavg"), as: UTF8.self).split(separator: " ").first {
            result.loadAverage = Double(first) ?? 0
        }
        return result
    }
}
