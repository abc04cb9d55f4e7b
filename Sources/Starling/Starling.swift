#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingNode
import StarlingWire

/// The entry point of every Starling program.
///
/// The same executable is the driver and, when a node starts it as a worker, the worker:
/// `run` detects that from the environment and serves tasks instead of calling `body`.
/// With no address, `run` starts an embedded cluster (a node in this process, workers as
/// child processes of this executable) and removes every process, socket and file it made
/// when `body` returns or throws.
/// ```swift
/// @main struct App {
///     static func main() async throws {
///         try await Starling.run { cluster in
///             print(try await cluster.get(cluster.submit(Square.self, 12)))
///         }
///     }
/// }
/// ```
public enum Starling {
    /// Options of an embedded cluster.
    public struct EmbeddedOptions: Sendable {
        /// Resources of the embedded node (CPU defaults to the core count).
        public var resources: [String: Double]?
        public init(resources: [String: Double]? = nil) { self.resources = resources }
    }

    /// Runs `body` on a cluster and returns its result.
    @discardableResult
    public static func run<Result: Sendable>(embedded options: EmbeddedOptions = EmbeddedOptions(),
                                             _ body: @Sendable (Cluster) async throws -> Result) async throws -> Result {
        ProcessTuning.apply()
        let environment = ProcessInfo.processInfo.environment
        if environment[WorkerEnvironment.workerID] != nil {
            await WorkerRuntime.serve(environment: environment)
        }
        if let address = environment["STARLING_ADDRESS"], !address.isEmpty {
            throw StarlingError.cluster("STARLING_ADDRESS=\(address): joining a running cluster is not implemented yet (the CLI issue brings multi-node clusters); unset it to use an embedded cluster")
        }
        let session = try EmbeddedSession.create()
        defer { session.remove() }
        let token = try ClusterToken.loadOrCreate(at: session.tokenFile)
        var settings = NodeSettings(sessionDir: session.path, tokenFile: session.tokenFile)
        if let resources = options.resources { settings.resources = ResourceSet(resources) }
        let node = NodeManager(settings: settings, token: token)
        do {
            try await node.start()
            guard let nodeAddress = await node.address else { throw StarlingError.cluster("the embedded node did not start") }
            let nodeClient = try await RPCClient.connect(to: nodeAddress, token: token, name: "driver")
            let objects = ObjectTable()
            let submitter = TaskSubmitter(node: nodeClient, objects: objects, token: token)
            let cluster = Cluster(objects: objects, submitter: submitter, ownerURL: "driver")
            let result: Result
            do {
                result = try await Cluster.$ambient.withValue(cluster) { try await body(cluster) }
            } catch {
                await submitter.shutdown()
                nodeClient.close()
                throw error
            }
            await submitter.shutdown()
            nodeClient.close()
            await node.stop()
            return result
        } catch {
            await node.stop()
            throw error
        }
    }

}

/// The directory of one embedded cluster: token, sockets, logs. Removed at exit.
struct EmbeddedSession {
    let path: String
    var tokenFile: String { path + "/token" }

    /// Removes session directories of drivers that died without cleaning up (SIGKILL, SIGTERM).
    static func removeStale() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for entry in entries where entry.hasPrefix("starling-") {
            let fields = entry.split(separator: "-")
            guard fields.count == 3, let pid = pid_t(fields[1]), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            EmbeddedSession(path: "/tmp/" + entry).remove()
        }
    }

    static func create() throws -> EmbeddedSession {
        removeStale()
        // ipc socket paths are limited to 107 bytes: keep the directory short.
        let path = "/tmp/starling-\(getpid())-\(UniqueID.random().short)"
        guard mkdir(path, 0o700) == 0 else {
            throw StarlingError.cluster("cannot create the session directory \(path): \(String(cString: strerror(errno)))")
        }
        return EmbeddedSession(path: path)
    }

    /// Removes the directory; retries because sockets inside may vanish while it is walked.
    func remove() {
        for _ in 0..<5 {
            if (try? FileManager.default.removeItem(atPath: path)) != nil || !FileManager.default.fileExists(atPath: path) { return }
            usleep(20_000)
        }
    }
}
