#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingWire
import Testing

@Suite("CPU affinity")
struct CPUAffinityTests {
    @Test("CPU lists parse and format as Linux writes them")
    func lists() {
        #expect(CPUAffinity.parse("0-3,6") == [0, 1, 2, 3, 6])
        #expect(CPUAffinity.parse("5") == [5])
        #expect(CPUAffinity.parse("3-1") == nil)
        #expect(CPUAffinity.parse("a") == nil)
        #expect(CPUAffinity.parse("") == nil)
        #expect(CPUAffinity.parse("-1") == nil)
        #expect(CPUAffinity.format([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8")
        #expect(CPUAffinity.format([3]) == "3")
        // As /proc and sysfs write them (a newline), out of order, repeated: sorted, distinct.
        #expect(CPUAffinity.parse("0-1\n") == [0, 1])
        #expect(CPUAffinity.parse("3,1,1-2") == [1, 2, 3])
        // A typo must not allocate billions of CPUs: past the mask's 1,024 is refused.
        #expect(CPUAffinity.parse("0-4000000000") == nil)
        #expect(CPUAffinity.parse("1024") == nil)
    }

    @Test("restrict moves every thread of another process; a CPU the machine lacks is refused")
    func restrictAnotherProcess() throws {
        let allowed = CPUAffinity.allowed()
        try #require(!allowed.isEmpty)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["30"]
        try child.run()
        // SIGKILL: a child started from async code may have SIGTERM blocked (PITFALLS.md).
        defer { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() }
        let pid = child.processIdentifier
        let last = try #require(allowed.last)
        #expect(CPUAffinity.restrict(process: pid, to: [last]))
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
        #expect(line.flatMap { $0.split(separator: "\t").last }.map(String.init) == "\(last)")
        #expect(!CPUAffinity.restrict(process: pid, to: [100_000]))
        // A CPU a mask can name but this machine lacks.
        if last < 1000 { #expect(!CPUAffinity.restrict(process: pid, to: [1000])) }
        #expect(!CPUAffinity.restrict(process: pid, to: []))
    }
}
