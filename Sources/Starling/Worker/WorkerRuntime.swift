#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingWire

/// What a worker process does instead of the user's closure: serve tasks for its node.
enum WorkerRuntime {
    static func serve(environment: [String: String]) async -> Never {
        ProcessTuning.dieWithParent()
        let log = Logger(label: "worker")
        do {
            guard let idHex = environment[WorkerEnvironment.workerID], let workerID = UniqueID(hex: idHex),
                  let nodeURL = environment[WorkerEnvironment.nodeURL],
                  let tokenFile = environment[WorkerEnvironment.tokenFile],
                  let sessionDir = environment[WorkerEnvironment.sessionDir] else {
                throw StarlingError.cluster("worker started without its environment (\(WorkerEnvironment.nodeURL), \(WorkerEnvironment.tokenFile), \(WorkerEnvironment.sessionDir))")
            }
            let token = try ClusterToken.load(from: tokenFile)
            // A worker is an owner too: tasks it runs may submit tasks through its node.
            var settings = TransportSettings()
            settings.failCallsOnDisconnect = true
            let node = try await RPCClient.connect(to: Address(nodeURL), token: token, name: "worker", settings: settings)
            let objects = ObjectTable()
            let cluster = Cluster(objects: objects, submitter: TaskSubmitter(node: node, objects: objects, token: token),
                                  ownerURL: "worker-\(workerID.short)")
            var routes = RouteTable()
            routes.add(WorkerRPC.pushTaskBatch) { request, _ in
                var reply = PushTaskBatchReply()
                for spec in request.tasks {
                    reply.results.append(await Cluster.$ambient.withValue(cluster) { await TaskExecutor.run(spec) })
                }
                return reply
            }
            routes.add(WorkerRPC.pushTask) { request, _ in
                let result = await Cluster.$ambient.withValue(cluster) { await TaskExecutor.run(request.task ?? TaskSpec()) }
                var reply = PushTaskReply()
                reply.status = result.status
                reply.returns = result.returns
                reply.error = result.error
                reply.runMicros = result.runMicros
                return reply
            }
            let server = try RPCServer(listeningOn: Address("ipc://\(sessionDir)/worker-\(idHex.prefix(8)).sock"), token: token,
                                       name: "worker \(idHex.prefix(8))", routes: routes)
            var registration = RegisterWorkerRequest()
            registration.workerId = workerID.bytes
            registration.pid = getpid()
            registration.address = ProcessAddress(url: server.address.description)
            _ = try await node.call(NodeManagerRPC.registerWorker, registration)
            // Serve until the node goes away (then PR_SET_PDEATHSIG or the next check ends us).
            while getppid() != 1 {
                try await Task.sleep(for: .seconds(1))
            }
            exit(0)
        } catch {
            log.error("worker cannot start: \(error)")
            exit(70)
        }
    }
}
