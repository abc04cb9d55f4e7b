#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingNode
import StarlingWire

/// A job started by `starling submit`: its driver runs as a child process of the head, on the
/// head's host, with the cluster's address and token; its output goes to a log the CLI reads.
struct Submission {
    let id: String
    let name: String
    let executableHash: [UInt8]
    let arguments: [String]
    let metadata: [String: String]
    let logPath: String
    /// The driver's pid, also its process group's id (it leads a group of its own).
    let pid: pid_t
    var state: JobState = .running
    var exitCode: Int32 = 0
    var message = ""
    let startUnixMs: Int64
    var endUnixMs: Int64 = 0
    var stopRequested = false

    var isFinished: Bool { state == .succeeded || state == .failed || state == .stopped }
}

extension Head {
    /// Starts an uploaded executable as a job's driver (idempotent by submission id).
    func submitJob(_ request: SubmitJobRequest) throws -> SubmitJobReply {
        var reply = SubmitJobReply()
        guard request.executableHash.count == 32 else {
            throw RPCFailure(.invalidArgument, "SubmitJob needs the SHA-256 (32 bytes) of an uploaded executable, got \(request.executableHash.count) bytes")
        }
        if !request.submissionId.isEmpty, let existing = submissions[request.submissionId] {
            // Idempotent for a retry of the same submission; another job under the same id is refused.
            guard existing.executableHash == request.executableHash, existing.arguments == request.arguments else {
                throw RPCFailure(.alreadyExists, "submission id \(request.submissionId) is taken by job \(existing.name) (\(existing.state)); choose another id")
            }
            reply.submissionId = request.submissionId
            return reply
        }
        let id = request.submissionId.isEmpty ? "job-" + UniqueID.random().hex.prefix(12) : request.submissionId
        guard id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }), !id.hasPrefix(".") else {
            throw RPCFailure(.invalidArgument, "submission id \"\(id)\" must be 1-64 letters, digits, '.', '_' or '-', not starting with '.'")
        }
        guard let executable = executables.runnablePath(request.executableHash) else {
            throw RPCFailure(.notFound, "the executable \(UniqueID(bytes: request.executableHash).short) was not uploaded (UploadExecutable first)")
        }
        guard let address = server?.address else { throw RPCFailure(.unavailable, "the head is not serving") }
        let root = settings.sessionDir + "/submissions"
        let tokenFile = root + "/token"
        let logPath = "\(root)/\(id).log"
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            if !FileManager.default.fileExists(atPath: tokenFile) { try token.write(to: tokenFile) }
        } catch {
            throw RPCFailure(.internal, "cannot prepare \(root): \(error)")
        }
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("STARLING_") || $0.key == "STARLING_LOG" }
        for (key, value) in request.environment { environment[key] = value }
        environment["STARLING_ADDRESS"] = address.description
        environment["STARLING_TOKEN_FILE"] = tokenFile
        environment["STARLING_SUBMISSION_ID"] = id
        let spawned: WorkerProcess.Spawned
        do {
            spawned = try WorkerProcess.spawn(executable: executable, arguments: request.arguments, environment: environment,
                                              logPath: logPath, newProcessGroup: true)
        } catch {
            throw RPCFailure(.internal, "cannot start \(request.executableName.isEmpty ? executable : request.executableName): \(error)")
        }
        let name = request.name.isEmpty ? (request.executableName.isEmpty ? id : request.executableName) : request.name
        submissions[id] = Submission(id: id, name: name, executableHash: request.executableHash, arguments: request.arguments,
                                     metadata: request.metadata, logPath: logPath, pid: spawned.pid, startUnixMs: Self.unixMs())
        log.info("submitted job \(id) (\(name)) started as pid \(spawned.pid)")
        let pid = spawned.pid
        Task { [weak self] in
            // Reaped here (the node's reaper waits only for its own workers' pids).
            while true {
                var status: Int32 = 0
                let reaped = waitpid(pid, &status, WNOHANG)
                if reaped == pid || (reaped < 0 && errno == ECHILD) {
                    await self?.submissionEnded(id, status: status, reaped: reaped == pid)
                    return
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        reply.submissionId = id
        return reply
    }

    func submissionEnded(_ id: String, status: Int32, reaped: Bool) {
        guard var submission = submissions[id], !submission.isFinished else { return }
        // The rest of its process group (children it started) goes with it.
        kill(-submission.pid, SIGKILL)
        let signal = status & 0x7f, code = (status >> 8) & 0xff
        submission.exitCode = signal == 0 ? code : 128 + signal
        submission.endUnixMs = Self.unixMs()
        if submission.stopRequested {
            submission.state = .stopped
            submission.message = "stopped by `starling job stop`"
        } else if !reaped {
            submission.state = .failed
            submission.message = "its driver's exit status was lost"
        } else if status == 0 {
            submission.state = .succeeded
        } else {
            submission.state = .failed
            submission.message = "its driver \(WorkerProcess.describe(status))"
        }
        submissions[id] = submission
        log.info("submitted job \(id) \(submission.state): \(submission.message.isEmpty ? "exit 0" : submission.message)")
    }

    /// The submitted job's description: its driver's job record once it registered, with the
    /// submission's own state (the process's outcome) once it ended.
    func submittedJob(_ id: String) -> JobInfo? {
        guard let submission = submissions[id] else { return nil }
        var info = jobs.all.first { $0.submissionId == id } ?? JobInfo()
        info.submissionId = id
        info.name = submission.name  // the driver registers under its file name, which on the head is a hash
        if info.executableHash.isEmpty { info.executableHash = submission.executableHash }
        if info.arguments.isEmpty { info.arguments = submission.arguments }
        info.metadata = submission.metadata
        info.startTimeUnixMs = submission.startUnixMs
        if submission.isFinished {
            info.state = submission.state
            info.exitCode = submission.exitCode
            info.message = submission.message
            info.endTimeUnixMs = submission.endUnixMs
        } else if info.jobId.isEmpty {
            info.state = .pending  // the driver has not registered yet
        } else {
            info.state = .running
        }
        return info
    }

    /// The submission a request names: by submission id, or by the job id its driver registered.
    private func submissionID(submissionID: String, jobID: [UInt8]) throws -> String {
        guard submissionID.isEmpty != jobID.isEmpty else {
            throw RPCFailure(.invalidArgument, "name the job by exactly one of submission_id and job_id")
        }
        if !submissionID.isEmpty {
            guard submissions[submissionID] != nil else { throw RPCFailure(.notFound, "no submitted job \(submissionID) on this cluster") }
            return submissionID
        }
        let job = UniqueID(bytes: jobID)
        guard let info = jobs.info(job) else { throw RPCFailure(.notFound, "no job \(job.hex) on this cluster") }
        guard !info.submissionId.isEmpty, submissions[info.submissionId] != nil else {
            throw RPCFailure(.invalidArgument, "job \(job.hex) was not started by `starling submit`; stop or read its driver where it runs")
        }
        return info.submissionId
    }

    /// Asks the driver's process group to exit (SIGTERM, then SIGKILL after 5 s), or kills it
    /// at once with `force`.
    func stopJob(_ request: StopJobRequest) throws -> StopJobReply {
        let id = try submissionID(submissionID: request.submissionId, jobID: request.jobId)
        var reply = StopJobReply()
        guard var submission = submissions[id], !submission.isFinished else { return reply }
        submission.stopRequested = true
        submissions[id] = submission
        let group = -submission.pid
        kill(group, request.force ? SIGKILL : SIGTERM)
        if !request.force {
            Task { [weak self] in
                try? await Task.sleep(for: .seconds(5))
                if await self?.submissions[id]?.isFinished == false { kill(group, SIGKILL) }
            }
        }
        log.info("stopping submitted job \(id) (process group \(submission.pid))\(request.force ? " with SIGKILL" : "")")
        reply.stopped = true
        return reply
    }

    /// The driver's output from `offset`, waiting up to `wait_ms` for more when there is none.
    func jobLogs(_ request: GetJobLogsRequest) async throws -> GetJobLogsReply {
        let id = try submissionID(submissionID: request.submissionId, jobID: request.jobId)
        let limit = Int(min(max(request.maxBytes == 0 ? 1 << 20 : request.maxBytes, 1), 4 << 20))
        let deadline = ContinuousClock.now + .milliseconds(Int(min(request.waitMs, 30_000)))
        while true {
            guard let submission = submissions[id] else { throw RPCFailure(.notFound, "submitted job \(id) is gone") }
            // Read whether it finished before reading the file: then no output can come after.
            let finished = submission.isFinished
            let (data, size) = Self.readLog(submission.logPath, from: request.offset, limit: limit)
            if !data.isEmpty || finished || ContinuousClock.now >= deadline {
                var reply = GetJobLogsReply()
                reply.data = data
                reply.nextOffset = request.offset + UInt64(data.count)
                reply.finished = finished && reply.nextOffset >= size
                reply.state = submittedJob(id)?.state ?? .unspecified
                return reply
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    nonisolated static func readLog(_ path: String, from offset: UInt64, limit: Int) -> (data: [UInt8], size: UInt64) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return ([], 0) }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        guard offset < size else { return ([], size) }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.read(upToCount: limit)) ?? Data()
        return ([UInt8](data), size)
    }

    /// The head is stopping: its submitted drivers go with it (SIGTERM to each group, then
    /// SIGKILL to what is left after up to 3 s).
    func stopSubmissions() async {
        let running = submissions.values.filter { !$0.isFinished }
        for submission in running {
            submissions[submission.id]?.stopRequested = true
            kill(-submission.pid, SIGTERM)
        }
        guard !running.isEmpty else { return }
        for _ in 0..<30 where running.contains(where: { kill($0.pid, 0) == 0 }) {
            try? await Task.sleep(for: .milliseconds(100))
        }
        for submission in running { kill(-submission.pid, SIGKILL) }
    }
}
