#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
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
    let process: Process
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
        if !request.submissionId.isEmpty, submissions[request.submissionId] != nil {
            reply.submissionId = request.submissionId
            return reply
        }
        let id = request.submissionId.isEmpty ? "job-" + UniqueID.random().hex.prefix(12) : request.submissionId
        guard id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
            throw RPCFailure(.invalidArgument, "submission id \"\(id)\" must be 1-64 letters, digits, '.', '_' or '-'")
        }
        guard let executable = executables.runnablePath(request.executableHash) else {
            throw RPCFailure(.notFound, "the executable \(UniqueID(bytes: request.executableHash).short) was not uploaded (UploadExecutable first)")
        }
        guard let address = server?.address else { throw RPCFailure(.unavailable, "the head is not serving") }
        let directory = settings.sessionDir + "/submissions"
        let tokenFile = directory + "/token"
        let logPath = "\(directory)/\(id).log"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: tokenFile) { try token.write(to: tokenFile) }
        } catch {
            throw RPCFailure(.internal, "cannot prepare \(directory): \(error)")
        }
        guard FileManager.default.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600]),
              let log = FileHandle(forWritingAtPath: logPath) else {
            throw RPCFailure(.internal, "cannot create the job's log \(logPath)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = request.arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("STARLING_") || $0.key == "STARLING_LOG" }
        for (key, value) in request.environment { environment[key] = value }
        environment["STARLING_ADDRESS"] = address.description
        environment["STARLING_TOKEN_FILE"] = tokenFile
        environment["STARLING_SUBMISSION_ID"] = id
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        process.terminationHandler = { [weak self] ended in
            let status = ended.terminationStatus, signaled = ended.terminationReason == .uncaughtSignal
            Task { await self?.submissionEnded(id, status: status, signaled: signaled) }
        }
        do {
            try process.run()
        } catch {
            try? log.close()
            throw RPCFailure(.internal, "cannot start \(request.executableName.isEmpty ? executable : request.executableName): \(error)")
        }
        try? log.close()
        let name = request.name.isEmpty ? (request.executableName.isEmpty ? id : request.executableName) : request.name
        submissions[id] = Submission(id: id, name: name, executableHash: request.executableHash, arguments: request.arguments,
                                     metadata: request.metadata, logPath: logPath, process: process, startUnixMs: Self.unixMs())
        self.log.info("submitted job \(id) (\(name)) started as pid \(process.processIdentifier)")
        reply.submissionId = id
        return reply
    }

    func submissionEnded(_ id: String, status: Int32, signaled: Bool) {
        guard var submission = submissions[id], !submission.isFinished else { return }
        submission.exitCode = status
        submission.endUnixMs = Self.unixMs()
        if submission.stopRequested {
            submission.state = .stopped
            submission.message = "stopped by `starling job stop`"
        } else if status == 0 && !signaled {
            submission.state = .succeeded
        } else {
            submission.state = .failed
            submission.message = signaled ? "its driver was killed by signal \(status)" : "its driver exited with status \(status)"
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

    /// Asks the driver to exit (SIGTERM, then SIGKILL after 5 s), or kills it with `force`.
    func stopJob(_ request: StopJobRequest) throws -> StopJobReply {
        var id = request.submissionId
        if id.isEmpty, let info = jobs.info(UniqueID(bytes: request.jobId)) {
            guard !info.submissionId.isEmpty else {
                throw RPCFailure(.invalidArgument, "job \(UniqueID(bytes: request.jobId).short) was not started by `starling submit`; stop its driver where it runs")
            }
            id = info.submissionId
        }
        guard var submission = submissions[id] else { throw RPCFailure(.notFound, "no submitted job \(id) on this cluster") }
        var reply = StopJobReply()
        guard !submission.isFinished, submission.process.isRunning else { return reply }
        submission.stopRequested = true
        submissions[id] = submission
        let pid = submission.process.processIdentifier
        kill(pid, request.force ? SIGKILL : SIGTERM)
        if !request.force {
            let process = submission.process
            Task {
                try? await Task.sleep(for: .seconds(5))
                if process.isRunning { kill(pid, SIGKILL) }
            }
        }
        log.info("stopping submitted job \(id) (pid \(pid))\(request.force ? " with SIGKILL" : "")")
        reply.stopped = true
        return reply
    }

    /// The driver's output from `offset`, waiting up to `wait_ms` for more when there is none.
    func jobLogs(_ request: GetJobLogsRequest) async throws -> GetJobLogsReply {
        var id = request.submissionId
        if id.isEmpty, let info = jobs.info(UniqueID(bytes: request.jobId)) { id = info.submissionId }
        guard submissions[id] != nil else {
            throw RPCFailure(.notFound, "no submitted job \(id.isEmpty ? UniqueID(bytes: request.jobId).short : id) on this cluster (only submitted jobs have driver logs)")
        }
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

    /// The head is stopping: its submitted drivers go with it.
    func stopSubmissions() {
        for (id, submission) in submissions where submission.process.isRunning {
            submissions[id]?.stopRequested = true
            kill(submission.process.processIdentifier, SIGTERM)
        }
    }
}
