#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingWire

/// The node's log files (one per worker, its stdout and stderr) for `starling logs`.
extension NodeManager {
    func addLogRoutes(to routes: inout RouteTable) {
        routes.add(NodeManagerRPC.listLogs) { [self] request, _ in await listLogs(request) }
        routes.add(NodeManagerRPC.readLog) { [self] request, _ in try await readLog(request) }
    }

    var logDirectory: String { settings.sessionDir + "/logs" }

    private func listLogs(_ request: ListLogsRequest) -> ListLogsReply {
        var reply = ListLogsReply()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: logDirectory)) ?? []
        for name in names.sorted() where name.hasSuffix(".log") {
            var info = stat()
            guard stat(logDirectory + "/" + name, &info) == 0 else { continue }
            var file = LogFile()
            file.name = name
            file.size = UInt64(info.st_size)
            file.modifiedUnixMs = Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000
            if let worker = workers.first(where: { $0.value.logPath.hasSuffix("/" + name) }) {
                file.workerId = worker.key.bytes
                file.jobId = worker.value.pool
            }
            if !request.workerId.isEmpty, file.workerId != request.workerId { continue }
            if !request.jobId.isEmpty, file.jobId != request.jobId { continue }
            reply.files.append(file)
        }
        return reply
    }

    private func readLog(_ request: ReadLogRequest) throws -> ReadLogReply {
        // Only plain names inside the log directory: no paths, no parent directories.
        guard !request.name.isEmpty, !request.name.contains("/"), !request.name.hasPrefix(".") else {
            throw RPCFailure(.invalidArgument, "log name \"\(request.name)\" must be a file name in the node's log directory")
        }
        let path = logDirectory + "/" + request.name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RPCFailure(.notFound, "no log \(request.name) on node \(nodeID.short)") }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let size = Int64(info.st_size)
        let start = request.offset >= 0 ? min(request.offset, size) : max(0, size + request.offset)
        let count = Int(min(Int64(request.maxBytes == 0 ? 1 << 20 : min(request.maxBytes, 8 << 20)), size - start))
        var reply = ReadLogReply()
        reply.data = [UInt8](unsafeUninitializedCapacity: max(count, 0)) { buffer, initialized in
            initialized = count > 0 ? max(0, pread(fd, buffer.baseAddress!, count, off_t(start))) : 0
        }
        reply.nextOffset = UInt64(start) + UInt64(reply.data.count)
        reply.size = UInt64(size)
        return reply
    }
}
