import Foundation
import Testing
import StarlingWire

/// Round trips of every generated message (values from Generated/RandomMessages.swift), the
/// ErrorReply convention, and what decoding does with bad bytes.
@Suite struct ProtoRoundTripTests {
    @Test func everyMessageTypeRoundTripsWithRandomValues() throws {
        #expect(allMessageRoundTrips.count > 150, "the generator should cover every message")
        for (index, entry) in allMessageRoundTrips.enumerated() {
            // One seed per type, so a failure replays without running the others.
            var rng = ProtoTestRNG(seed: 0x5EED_0000 &+ UInt64(index))
            for iteration in 0..<200 {
                if let mismatch = try entry.check(&rng) {
                    Issue.record("\(entry.name), iteration \(iteration): \(mismatch)")
                    break
                }
            }
        }
    }

    @Test func defaultValuesPackToNothing() throws {
        #expect(NodeInfo().serializedBytes().isEmpty)
        #expect(TaskSpec().serializedBytes().isEmpty)
        #expect(try TaskSpec(serializedBytes: []) == TaskSpec())
        #expect(try PushTaskReply(serializedBytes: []).status == nil)
    }

    @Test func nestedValuesSurvive() throws {
        var spec = TaskSpec()
        spec.taskId = Array(repeating: 7, count: 24)
        spec.functionName = "$s4main6SquareV"
        spec.encodedArgs = Array(0...255)
        spec.resources = ["CPU": 1, "GPU": 0.5, "memory": 1e9]
        spec.labels = ["trace": "ü-🚀", "": ""]
        spec.maxRetries = -1
        spec.owner = ProcessAddress(url: "tcp://127.0.0.1:6380", nodeId: [1, 2], workerId: [])
        spec.refArgs = [TaskArg(ref: ObjectReference(objectId: [9]), inlineValue: [], isInline: false, size: .max)]
        spec.strategy = SchedulingStrategy(kind: .placementGroup, bundleIndex: -1)
        let back = try TaskSpec(serializedBytes: spec.serializedBytes())
        #expect(back == spec)
        let push = PushTaskRequest(task: spec, leaseId: [1, 2, 3])
        #expect(try PushTaskRequest(serializedBytes: push.serializedBytes()) == push)
        #expect(back.strategy?.bundleIndex == -1)
        #expect(back.refArgs.first?.size == .max)
    }

    @Test func mapsPackDeterministically() {
        var a = NodeResources()
        var b = NodeResources()
        for key in ["CPU", "GPU", "memory", "zone-a", "custom"] { a.total[key] = 1 }
        for key in ["custom", "zone-a", "memory", "GPU", "CPU"] { b.total[key] = 1 }
        #expect(a.serializedBytes() == b.serializedBytes())
    }

    @Test func errorReplyDecodesAsEveryReply() throws {
        let error = ErrorReply(status: Status(code: .unknownMethod, message: "no handler for method 77777 ✗"))
        let bytes = error.serializedBytes()
        #expect(allReplyStatusDecoders.count > 50)
        for entry in allReplyStatusDecoders {
            let status = try entry.decode(bytes)
            #expect(status == error.status, "\(entry.name) lost the status of an ErrorReply")
        }
        // And a full reply decodes as an ErrorReply with the same status.
        let reply = RequestWorkerLeaseReply(status: Status(code: .infeasible, message: "needs {GPU: 4}"), granted: true)
        #expect(try ErrorReply(serializedBytes: reply.serializedBytes()).status == reply.status)
    }

    @Test func unknownEnumNumbersDecodeAsTheZeroCase() throws {
        // Status { code = 9999 }: field 1, varint 9999.
        let status = try Status(serializedBytes: [0x08, 0x8F, 0x4E])
        #expect(status.code == .ok)
        let event = try Event(serializedBytes: [0x18, 0xE7, 0x07])  // kind = 999
        #expect(event.kind == .unspecified)
    }

    @Test func stringsAreCutAtNul() throws {
        // protobuf-c strings are C strings: U+0000 ends them.
        let status = Status(code: .ok, message: "before\u{0}after")
        #expect(try Status(serializedBytes: status.serializedBytes()).message == "before")
    }

    @Test(arguments: [
        [0x08] as [UInt8],                      // varint field with no value
        [0x12, 0x05, 0x01],                     // length 5, one byte present
        [0x0A, 0x02, 0x08],                     // Status: nested message cut short
        [0x0F],                                 // wire type 7 does not exist
        [0x00, 0x00],                           // field number 0
        [UInt8](repeating: 0xFF, count: 11),    // varint longer than 10 bytes
        [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],   // length near 4 GiB
    ])
    func malformedBytesThrow(bytes: [UInt8]) {
        for decode in [
            { try HelloReply(serializedBytes: $0) as Any },
            { try PushTaskReply(serializedBytes: $0) as Any },
            { try TaskSpec(serializedBytes: $0) as Any },
        ] as [([UInt8]) throws -> Any] {
            do {
                _ = try decode(bytes)
                Issue.record("\(bytes) decoded")
            } catch let error as WireError {
                guard case .malformed(let what, let detail) = error else {
                    Issue.record("unexpected error \(error)")
                    continue
                }
                #expect(what.hasPrefix("starling."))
                #expect(detail.contains("\(bytes.count) bytes"))
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func randomAndTruncatedBytesNeverCrash() throws {
        var rng = ProtoTestRNG(seed: 42)
        var valid: [UInt8] = []
        while valid.count < 64 { valid = TaskSpec.random(using: &rng).serializedBytes() }
        for i in 0..<5000 {
            let bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                var cut = Array(valid.prefix(Int.random(in: 0..<valid.count, using: &rng)))
                if !cut.isEmpty, Bool.random(using: &rng) { cut[Int.random(in: 0..<cut.count, using: &rng)] ^= 0xFF }
                bytes = cut
            }
            do {
                _ = try TaskSpec(serializedBytes: bytes)
                _ = try GetClusterViewReply(serializedBytes: bytes)
            } catch let error as WireError {
                guard case .malformed = error else { Issue.record("unexpected error \(error)"); return }
            }
        }
    }

    @Test func rpcTablesAreConsistent() {
        #expect(starlingProtocolVersion == 1)
        #expect(HandshakeRPC.hello.method == 1)
        #expect(HandshakeRPC.prove.method == 2)
        #expect(DiagnosticsRPC.echo.method == 3)
        #expect(HeadRPC.registerNode.name == "Head.RegisterNode")
        #expect(Set(allRPCs.map(\.method)).count == allRPCs.count, "method numbers must be unique")
        #expect(Set(allRPCs.map(\.name)).count == allRPCs.count, "RPC names must be unique")
        for rpc in allRPCs {
            let range: ClosedRange<UInt32> = switch rpc.name.split(separator: ".")[0] {
            case "Handshake": 1...2
            case "Diagnostics": 3...9
            case "Head": 100...199
            case "NodeManager": 200...299
            case "Worker": 300...399
            case "ObjectManager", "ObjectStore", "ObjectDirectory": 400...499
            default: 500...599
            }
            #expect(range.contains(rpc.method), "\(rpc.name) has method \(rpc.method), outside \(range)")
        }
    }
}

/// Fails when the committed protoc-c and Swift code no longer match Protocols/*.proto.
@Suite struct ProtoFreshnessTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var protocCInstalled: Bool {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/protoc-c")
        }
    }

    @Test(.enabled(if: protocCInstalled, "skipped: protoc-c not installed, generated protobuf code not checked"))
    func generatedCodeMatchesProtocols() throws {
        let process = Process()
        process.executableURL = Self.repositoryRoot.appendingPathComponent("scripts/gen-proto")
        process.arguments = ["--check"]
        process.currentDirectoryURL = Self.repositoryRoot
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "scripts/gen-proto --check failed:\n\(output)")
    }
}
