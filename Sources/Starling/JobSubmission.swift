import Foundation
import StarlingCore
import StarlingWire

/// `starling submit` and `starling job …`: runs an executable as a job's driver on the head's
/// host (uploaded to the head first), reports its state, streams its output, stops it.
/// Every call authenticates with the cluster token, so only token holders can run code.
public enum JobSubmission {
    /// A submitted job as the head describes it.
    public struct Status: Sendable, CustomStringConvertible {
        public let submissionID: String
        /// PENDING (driver not registered yet), RUNNING, SUCCEEDED, FAILED or STOPPED.
        public let state: String
        public let exitCode: Int32
        public let message: String
        /// The job id its driver registered with (empty while pending).
        public let jobID: String
        public let name: String

        public var isFinished: Bool { ["SUCCEEDED", "FAILED", "STOPPED"].contains(state) }

        public var description: String {
            var text = "job \(submissionID) (\(name)): \(state)"
            if isFinished { text += ", exit code \(exitCode)" }
            if !message.isEmpty { text += ": \(message)" }
            if !jobID.isEmpty { text += " [job id \(jobID)]" }
            return text
        }

        init(_ info: JobInfo) {
            submissionID = info.submissionId
            state = Self.name(info.state)
            exitCode = info.exitCode
            message = info.message
            jobID = info.jobId.isEmpty ? "" : UniqueID(bytes: info.jobId).hex
            name = info.name
        }

        static func name(_ state: JobState) -> String {
            switch state {
            case .pending: return "PENDING"
            case .running: return "RUNNING"
            case .succeeded: return "SUCCEEDED"
            case .failed: return "FAILED"
            case .stopped: return "STOPPED"
            default: return "UNKNOWN"
            }
        }
    }

    /// Uploads `executable` (if the head lacks it) and starts it with `arguments`; returns the
    /// submission id.
    public static func submit(address: String, tokenFile: String, executable: String, arguments: [String],
                              name: String? = nil, submissionID: String? = nil) async throws -> String {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw StarlingError.cluster("\(executable) is not an executable file")
        }
        let connection = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "starling submit")
        defer { connection.head.close() }
        let hash = try FileDigest.sha256(ofFileAt: executable)
        let fileName = URL(fileURLWithPath: executable).lastPathComponent
        try await DriverSession.upload(executable, hash: hash, name: fileName, to: connection.head)
        var request = SubmitJobRequest()
        request.executableHash = hash
        request.executableName = fileName
        request.arguments = arguments
        request.name = name ?? fileName
        request.submissionId = submissionID ?? ""
        do {
            return try await connection.head.call(HeadRPC.submitJob, request, timeout: .seconds(30)).submissionId
        } catch {
            throw StarlingError.cluster("the head did not start \(fileName): \(error)")
        }
    }

    public static func status(address: String, tokenFile: String, id: String) async throws -> Status {
        let connection = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "starling job")
        defer { connection.head.close() }
        return try await status(connection.head, id)
    }

    /// A job named by its submission id, or by its 32-hex-digit job id (as `list jobs` shows).
    static func identify(_ id: String) -> (submission: String, job: [UInt8]) {
        if id.count == 32, let job = UniqueID(hex: id) { return ("", job.bytes) }
        return (id, [])
    }

    static func status(_ head: RPCClient, _ id: String) async throws -> Status {
        var request = GetJobRequest()
        (request.submissionId, request.jobId) = identify(id)
        do {
            guard let info = try await head.call(HeadRPC.getJob, request).job else { throw StarlingError.cluster("the head described no job \(id)") }
            return Status(info)
        } catch let error as StarlingError {
            throw error
        } catch {
            throw StarlingError.cluster("job \(id): \(error)")
        }
    }

    /// Writes the job's output from the start to `output`; with `follow`, keeps reading until
    /// the job has finished and returns its final status.
    public static func logs(address: String, tokenFile: String, id: String, follow: Bool,
                            output: @Sendable (Data) -> Void) async throws -> Status {
        let connection = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "starling job")
        defer { connection.head.close() }
        var request = GetJobLogsRequest()
        (request.submissionId, request.jobId) = identify(id)
        request.waitMs = follow ? 2_000 : 0
        while true {
            let reply: GetJobLogsReply
            do {
                reply = try await connection.head.call(HeadRPC.getJobLogs, request, timeout: .seconds(30))
            } catch {
                throw StarlingError.cluster("job \(id): \(error)")
            }
            if !reply.data.isEmpty { output(Data(reply.data)) }
            request.offset = reply.nextOffset
            if reply.finished || (!follow && reply.data.isEmpty) { break }
        }
        return try await status(connection.head, id)
    }

    /// Stops a running submitted job (SIGTERM, then SIGKILL after 5 s; `force`: SIGKILL now).
    /// Returns false when it had already finished.
    public static func stop(address: String, tokenFile: String, id: String, force: Bool) async throws -> Bool {
        let connection = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "starling job")
        defer { connection.head.close() }
        var request = StopJobRequest()
        (request.submissionId, request.jobId) = identify(id)
        request.force = force
        do {
            return try await connection.head.call(HeadRPC.stopJob, request).stopped
        } catch {
            throw StarlingError.cluster("job \(id): \(error)")
        }
    }
}
