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
        /// Idle workers beyond the prestarted one are stopped after this long (default 60 s).
        public var idleWorkerTimeout: Duration?
        /// Bytes of the node's shared-memory object store (default 30% of memory).
        public var objectStoreCapacity: UInt64?
        /// Port of the head's HTTP endpoint (dashboard, `/metrics`, `/api/`) on 127.0.0.1; 0
        /// picks a free one (printed on stderr); nil (the default) runs none.
        public var dashboardPort: Int?
        public init(resources: [String: Double]? = nil, idleWorkerTimeout: Duration? = nil, objectStoreCapacity: UInt64? = nil,
                    dashboardPort: Int? = nil) {
            self.resources = resources
            self.idleWorkerTimeout = idleWorkerTimeout
            self.objectStoreCapacity = objectStoreCapacity
            self.dashboardPort = dashboardPort
        }
    }

    /// `run` for a program's `main`: an error ends the process with `error: …` on stderr and
    /// exit status 1, instead of Swift's crash report for an error thrown out of `main`.
    /// ```swift
    /// @main struct App {
    ///     static func main() async { await Starling.runOrExit { cluster in … } }
    /// }
    /// ```
    public static func runOrExit(embedded options: EmbeddedOptions = EmbeddedOptions(),
                                 _ body: @Sendable (Cluster) async throws -> Void) async {
        do {
            try await run(embedded: options, body)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        }
    }

    /// Runs `body` on a cluster and returns its result.
    ///
    /// With `STARLING_ADDRESS` set (`HOST:PORT` of a head started with `starling start --head`)
    /// it joins that cluster, reading the token from `STARLING_TOKEN_FILE` (default
    /// `~/.starling/token`); otherwise it starts an embedded cluster with `options`.
    @discardableResult
    public static func run<Result: Sendable>(embedded options: EmbeddedOptions = EmbeddedOptions(),
                                             _ body: @Sendable (Cluster) async throws -> Result) async throws -> Result {
        ProcessTuning.apply()
        let environment = ProcessInfo.processInfo.environment
        if environment[WorkerEnvironment.workerID] != nil {
            await WorkerRuntime.serve(environment: environment)
        }
        // Before an embedded node starts: its threads join the driver's CPU, and its first
        // workers are placed there too (the cheapest path for a driver waiting on each task).
        keepDriverThreadsTogether(environment)
        let session: DriverSession
        if let address = environment["STARLING_ADDRESS"], !address.isEmpty {
            session = try await DriverSession.join(address: address, tokenFile: environment["STARLING_TOKEN_FILE"] ?? defaultTokenFile)
        } else {
            session = try await DriverSession.embedded(options)
        }
        let objects = ObjectTable()
        let actors = StarlingActorSystem.install(token: session.token, head: session.head, headURL: nil)
        let submitter = TaskSubmitter(node: session.node, jobID: session.jobID, objects: objects, token: session.token, actors: actors)
        let ownerAddress = OwnerAddress()
        let stored = StoredObjects()
        let cluster = Cluster(objects: objects, submitter: submitter, ownerAddress: ownerAddress, nodeID: session.nodeID,
                              actorSystem: actors, jobID: session.jobID, token: session.token, node: session.node, stored: stored)
        var routes = RouteTable()
        ObjectOwnership.addRoutes(to: &routes, objects: objects, stored: stored, nodeID: session.nodeID)
        let ownerServer: RPCServer
        do {
            ownerServer = try RPCServer(listeningOn: session.ownerListen, token: session.token, name: "driver", routes: routes)
        } catch {
            actors.shutdown()
            await session.close(failure: "\(error)")
            throw StarlingError.cluster("the driver cannot serve its objects at \(session.ownerListen): \(error)")
        }
        ownerAddress.set(ownerServer.address.description)
        func finish(_ failure: String?) async {
            // The head hears the last of this job's task counts and failures.
            await HealthReporter.shared.flush()
            await submitter.shutdown()
            actors.shutdown()
            cluster.owners.closeAll()
            await ownerServer.close()
            await session.close(failure: failure)
        }
        do {
            let result = try await Cluster.$ambient.withValue(cluster) { try await body(cluster) }
            await finish(nil)
            return result
        } catch {
            await finish("\(error)")
            throw error
        }
    }

    /// The variable that places a driver's threads: unset, on the CPU the driver runs on when
    /// it starts; `all`, wherever the kernel likes; a list (`0-1,4`), on those CPUs.
    public static let driverCPUsVariable = "STARLING_DRIVER_CPUS"

    /// Keeps the driver's threads (and an embedded node's, started before) on one CPU, where
    /// its many small hand-offs between threads are cheap (see `CPUAffinity`). Workers are
    /// not affected: they take their node's CPUs when they start.
    private static func keepDriverThreadsTogether(_ environment: [String: String]) {
        let setting = environment[driverCPUsVariable] ?? ""
        if setting == "all" { return }
        let cpus = setting.isEmpty ? CPUAffinity.current().map { [$0] } : CPUAffinity.parse(setting)
        if let cpus, CPUAffinity.place(on: cpus) { return }
        Logger(label: "driver").warning("the driver's threads stay unplaced: \(setting.isEmpty ? "the kernel did not say which CPUs this process may use" : "\(driverCPUsVariable)=\(setting) names no CPU this process may use")")
    }

    /// Where `starling start --head` writes the cluster token unless told otherwise.
    public static var defaultTokenFile: String {
        (ProcessInfo.processInfo.environment["HOME"] ?? "/tmp") + "/.starling/token"
    }
}
