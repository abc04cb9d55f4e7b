#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingNode
import StarlingWire

/// Job executables the head holds, by SHA-256: uploaded by drivers in chunks, fetched by nodes
/// that lack them. A file is only served once its whole content matched its hash.
struct ExecutableStore {
    let directory: String
    private var partial: [String: (name: String, size: UInt64, received: UInt64)] = [:]
    private var complete: [String: (name: String, size: UInt64)] = [:]

    /// Largest chunk an upload or fetch carries.
    static let maxChunk = 4 << 20
    /// Largest executable accepted.
    static let maxSize: UInt64 = 2 << 30

    init(directory: String) {
        self.directory = directory
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func has(_ hash: [UInt8]) -> Bool { complete[UniqueID(bytes: hash).hex] != nil }

    func describe(_ hash: [UInt8]) -> (name: String, size: UInt64)? { complete[UniqueID(bytes: hash).hex] }

    /// Appends one chunk; returns bytes held and whether the file is complete and verified.
    mutating func append(_ request: UploadExecutableRequest) throws -> (received: UInt64, complete: Bool) {
        guard request.executableHash.count == 32 else {
            throw RPCFailure(.invalidArgument, "executable_hash must be a SHA-256 (32 bytes), got \(request.executableHash.count)")
        }
        let hex = UniqueID(bytes: request.executableHash).hex
        if let done = complete[hex] { return (done.size, true) }
        guard request.totalSize > 0, request.totalSize <= Self.maxSize else {
            throw RPCFailure(.invalidArgument, "executable size \(request.totalSize) is out of range (1 byte to \(Self.maxSize))")
        }
        guard request.data.count <= Self.maxChunk else {
            throw RPCFailure(.tooLarge, "chunk of \(request.data.count) bytes is over \(Self.maxChunk)")
        }
        let name = JobExecutables.safeName(request.executableName)
        var state = partial[hex] ?? (name, request.totalSize, 0)
        guard state.size == request.totalSize else {
            throw RPCFailure(.invalidArgument, "total_size \(request.totalSize) differs from the \(state.size) this upload started with")
        }
        // Only the next expected chunk is taken: a resend of an earlier one is answered with
        // the offset to continue from.
        guard request.offset == state.received else { return (state.received, false) }
        guard state.received + UInt64(request.data.count) <= state.size else {
            throw RPCFailure(.invalidArgument, "chunk at \(request.offset) of \(request.data.count) bytes runs past total_size \(state.size)")
        }
        let temporary = "\(directory)/\(hex).partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_CLOEXEC, 0o700)
        guard fd >= 0 else { throw RPCFailure(.internal, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try Self.writeAll(fd, request.data, at: off_t(request.offset), path: temporary)
        state.received += UInt64(request.data.count)
        partial[hex] = state
        guard state.received == state.size else { return (state.received, false) }
        partial[hex] = nil
        let digest = try FileDigest.sha256(ofFileAt: temporary)
        guard digest == request.executableHash else {
            unlink(temporary)
            throw RPCFailure(.invalidArgument, "the uploaded executable's SHA-256 is \(UniqueID(bytes: digest).hex), not the \(hex) announced; upload again")
        }
        guard rename(temporary, path(hex)) == 0 else { throw RPCFailure(.internal, "cannot store the executable: \(String(cString: strerror(errno)))") }
        complete[hex] = (state.name, state.size)
        return (state.size, true)
    }

    /// Up to `maxBytes` of the executable from `offset`.
    func read(_ hash: [UInt8], offset: UInt64, maxBytes: Int) throws -> (data: [UInt8], size: UInt64, name: String) {
        let hex = UniqueID(bytes: hash).hex
        guard let entry = complete[hex] else { throw RPCFailure(.notFound, "the head has no executable with SHA-256 \(hex)") }
        guard offset <= entry.size else { throw RPCFailure(.invalidArgument, "offset \(offset) is past the executable's \(entry.size) bytes") }
        let count = Int(min(UInt64(min(max(maxBytes, 1), Self.maxChunk)), entry.size - offset))
        let fd = open(path(hex), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RPCFailure(.internal, "cannot read \(path(hex)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var data = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw RPCFailure(.internal, "short read of \(path(hex))") }
            done += n
        }
        return (data, entry.size, entry.name)
    }

    private func path(_ hex: String) -> String { "\(directory)/\(hex)" }

    /// The file of a complete executable, made runnable (for a job `starling submit` starts on
    /// the head's host); nil when it is unknown or incomplete.
    func runnablePath(_ hash: [UInt8]) -> String? {
        let hex = UniqueID(bytes: hash).hex
        guard complete[hex] != nil else { return nil }
        let file = path(hex)
        return chmod(file, 0o755) == 0 ? file : nil
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: off_t, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, offset + off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw RPCFailure(.internal, "cannot write \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }
}
