#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingWire

/// The executables of the jobs whose workers this node runs: looked up at the head by job,
/// fetched once by content hash into the session directory, verified, then reused.
public actor JobExecutables {
    private let directory: String
    private var known: [UniqueID: String] = [:]
    /// Fetches in progress by content hash: jobs of the same binary share one download.
    private var fetching: [[UInt8]: Task<String, Error>] = [:]
    private let log = Logger(label: "node")

    init(directory: String) {
        self.directory = directory
    }

    /// The local path of `job`'s executable, fetched from the head if this node lacks it.
    func path(for job: UniqueID, head: RPCClient) async throws -> String {
        if let path = known[job] { return path }
        var lookup = GetJobRequest()
        lookup.jobId = job.bytes
        guard let info = try await head.call(HeadRPC.getJob, lookup).job, info.executableHash.count == 32 else {
            throw RPCFailure(.notFound, "job \(job.short) has no executable registered at the head")
        }
        if let path = known[job] { return path }
        let hash = info.executableHash
        let task: Task<String, Error>
        if let running = fetching[hash] {
            task = running
        } else {
            let directory = self.directory
            task = Task { try await Self.fetch(info, head: head, directory: directory) }
            fetching[hash] = task
        }
        defer { fetching[hash] = nil }
        let path = try await task.value
        known[job] = path
        return path
    }

    /// A file name without directories or odd characters (the name only labels the copy).
    public static func safeName(_ name: String) -> String {
        let base = name.split(separator: "/").last.map(String.init) ?? ""
        let cleaned = String(base.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || "0123456789-_.".unicodeScalars.contains($0)) })
        return cleaned.isEmpty || cleaned.hasPrefix(".") ? "job" : cleaned
    }

    private static func fetch(_ info: JobInfo, head: RPCClient, directory: String) async throws -> String {
        let job = UniqueID(bytes: info.jobId)
        let hex = UniqueID(bytes: info.executableHash).hex
        let name = safeName(info.executableName)
        let folder = "\(directory)/\(hex)"
        let path = "\(folder)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let temporary = "\(path).\(UniqueID.random().short).partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o700)
        guard fd >= 0 else { throw RPCFailure(.internal, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var offset: UInt64 = 0
        var total: UInt64 = 1
        do {
            while offset < total {
                var request = FetchExecutableRequest()
                request.executableHash = info.executableHash
                request.offset = offset
                request.maxBytes = 4 << 20
                let chunk = try await head.call(HeadRPC.fetchExecutable, request, timeout: .seconds(60))
                total = chunk.totalSize
                guard !chunk.data.isEmpty || offset == total else { throw RPCFailure(.internal, "the head sent an empty chunk at \(offset) of \(total)") }
                var done = 0
                while done < chunk.data.count {
                    let n = chunk.data.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, chunk.data.count - done, off_t(offset) + off_t(done)) }
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else { throw RPCFailure(.internal, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
                    done += n
                }
                offset += UInt64(chunk.data.count)
            }
            close(fd)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard try FileDigest.sha256(ofFileAt: temporary) == info.executableHash else {
            unlink(temporary)
            throw RPCFailure(.internal, "the executable of job \(job.short) fetched from the head does not match its SHA-256 \(hex)")
        }
        guard rename(temporary, path) == 0 else { throw RPCFailure(.internal, "cannot store \(path): \(String(cString: strerror(errno)))") }
        Logger(label: "node").info("fetched job \(job.short)'s executable \(name) (\(total) bytes) from the head")
        return path
    }
}
