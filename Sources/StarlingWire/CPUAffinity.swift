import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// Which CPUs a process's threads may run on.
///
/// On these machines a wake-up that crosses CPUs costs tens of microseconds (an interrupt
/// between virtual CPUs), a wake-up on the same CPU a few: every message a process handles
/// passes four or five of its threads (NNG's poller and task threads, the executor's). A
/// process whose threads share one CPU answers a round trip about twice as fast (BENCHMARKS.md,
/// "CPU placement"). Nodes and drivers use this to keep each process's threads together.
public enum CPUAffinity {
    /// Words of the kernel's CPU mask (1,024 CPUs).
    private static let maskWords = 16

    /// The CPUs the calling thread may run on, in order (empty when the kernel would not say).
    public static func allowed() -> [Int] {
        var mask = [UInt](repeating: 0, count: maskWords)
        let bytes = mask.withUnsafeMutableBufferPointer { starling_get_thread_cpus(0, $0.baseAddress, Int32(maskWords)) }
        guard bytes > 0 else { return [] }
        var cpus: [Int] = []
        for word in 0..<(Int(bytes) / MemoryLayout<UInt>.size) where mask[word] != 0 {
            for bit in 0..<UInt.bitWidth where mask[word] & (1 << UInt(bit)) != 0 {
                cpus.append(word * UInt.bitWidth + bit)
            }
        }
        return cpus
    }

    /// Set by a driver that placed its threads, for the processes it starts (which inherit
    /// its CPUs): the CPUs it had before. Starling's nodes and workers take them back.
    public static let unplacedVariable = "STARLING_UNPLACED_CPUS"
    /// Set with `unplacedVariable`: the CPUs the driver was placed on. A process takes the
    /// unplaced CPUs back only while its own are exactly these (not when someone placed it
    /// elsewhere on purpose, with `taskset` say).
    public static let placedVariable = "STARLING_PLACED_CPUS"

    /// The CPUs this process may use unplaced: those it started with, or those of the placed
    /// driver that started it. What a node gives its workers.
    public static let original: [Int] = {
        let now = allowed()
        if inheritedPlacement(now), let list = variable(unplacedVariable), let cpus = parse(list) { return cpus }
        return now
    }()

    /// Takes back the CPUs a placed driver had when it started this process (a node started by
    /// a driver, say), so that the process is not confined to the driver's one CPU.
    public static func undoInheritedPlacement() {
        guard inheritedPlacement(allowed()), !original.isEmpty else { return }
        restrict(to: original)
    }

    /// Places this process's threads on `cpus`, and tells the processes it starts which CPUs
    /// it had before (`unplacedVariable`, `placedVariable`). False when it could not: its
    /// CPUs are unknown, or `cpus` holds none it may use.
    @discardableResult
    public static func place(on cpus: [Int]) -> Bool {
        guard !original.isEmpty, restrict(to: cpus) else { return false }
        // Only when they change: setenv is not safe while other threads read the environment.
        for (name, value) in [(unplacedVariable, format(original)), (placedVariable, format(allowed()))] where variable(name) != value {
            setenv(name, value, 1)
        }
        return true
    }

    /// True when this process still has the CPUs its placed parent had.
    private static func inheritedPlacement(_ allowed: [Int]) -> Bool {
        guard let placed = variable(placedVariable).flatMap(parse) else { return false }
        return placed == allowed
    }

    private static func variable(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The CPU the calling thread runs on now.
    public static func current() -> Int? {
        let cpu = starling_current_cpu()
        return cpu >= 0 ? Int(cpu) : nil
    }

    /// Restricts every thread of process `pid` (0: this process) to `cpus`; threads it starts
    /// later inherit the restriction. False when a thread could not be moved or `cpus` holds
    /// no CPU this process may use.
    @discardableResult
    public static func restrict(process pid: pid_t = 0, to cpus: [Int]) -> Bool {
        var mask = [UInt](repeating: 0, count: maskWords)
        for cpu in cpus where cpu >= 0 && cpu < maskWords * UInt.bitWidth {
            mask[cpu / UInt.bitWidth] |= 1 << UInt(cpu % UInt.bitWidth)
        }
        guard mask.contains(where: { $0 != 0 }) else { return false }
        let process = pid == 0 ? getpid() : pid
        if process == getpid() { _ = original } // taken before the first change
        var allMoved = true
        var moved = 0
        // Twice: a thread started while the first pass ran may have copied the old mask.
        for _ in 0..<2 {
            for thread in threads(of: process) {
                let result = mask.withUnsafeBufferPointer { starling_set_thread_cpus(thread, $0.baseAddress, Int32(maskWords)) }
                // A thread that ended meanwhile (ESRCH) needs no moving.
                if result == 0 { moved += 1 } else if result != -ESRCH { allMoved = false }
            }
        }
        return allMoved && moved > 0
    }

    /// Parses a CPU list as Linux writes them (`0-3,6`, a trailing newline allowed) into
    /// sorted, distinct CPUs. Nil when it is not one, or names a CPU past the 1,024 a mask holds.
    public static func parse(_ list: String) -> [Int]? {
        var cpus = Set<Int>()
        let limit = maskWords * UInt.bitWidth
        for part in list.split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
                .map { Int(String($0.filter { $0 != " " && $0 != "\n" && $0 != "\t" })) }
            guard let low = bounds.first ?? nil, low >= 0 else { return nil }
            let high = bounds.count == 2 ? bounds[1] : low
            guard let high, high >= low, high < limit else { return nil }
            cpus.formUnion(low...high)
        }
        return cpus.isEmpty ? nil : cpus.sorted()
    }

    /// Writes `cpus` as a list `parse` reads (`0,1,2` as `0-2`).
    public static func format(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        let sorted = Array(Set(cpus)).sorted()
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count, sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    private static func threads(of pid: pid_t) -> [Int32] {
        guard let directory = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(directory) }
        var threads: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if let thread = Int32(name) { threads.append(thread) }
        }
        return threads
    }
}
