#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingWire
import Synchronization

/// What a worker process does instead of the user's closure: serve tasks for its node.
enum WorkerRuntime {
    /// Bytes of inline results one batch reply may carry (under the 80 MiB message limit).
    static let replyBudget = 48 << 20

    static func serve(environment: [String: String]) async -> Never {
        ProcessTuning.dieWithParent()
        // A worker starts with the mask of the thread that spawned it: the node's CPUs, not
        // the one CPU of a driver that hosts the node.
        if let list = environment[WorkerEnvironment.cpus], let cpus = CPUAffinity.parse(list) {
            CPUAffinity.restrict(to: cpus)
        }
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
            let jobID = environment[WorkerEnvironment.jobID].flatMap { UniqueID(hex: $0) } ?? UniqueID(bytes: [])
            let nodeID = environment[WorkerEnvironment.nodeID].flatMap { UniqueID(hex: $0) } ?? UniqueID(bytes: [])
            let objects = ObjectTable()
            let actors = StarlingActorSystem.install(token: token, head: nil, headURL: environment[WorkerEnvironment.headURL])
            let ownerAddress = OwnerAddress()
            let stored = StoredObjects()
            let cluster = Cluster(objects: objects, submitter: TaskSubmitter(node: node, jobID: jobID, objects: objects, token: token, actors: actors),
                                  ownerAddress: ownerAddress, nodeID: nodeID, actorSystem: actors, jobID: jobID, token: token,
                                  node: node, stored: stored)
            let running = RunningTasks()
            var routes = RouteTable()
            routes.add(WorkerRPC.pushTaskBatch) { request, _ in
                // A reply must fit one message: once the results so far leave less room than
                // one more inline result may take, the rest are sent back unrun (the owner
                // queues them again, not as a retry).
                var reply = PushTaskBatchReply()
                var replyBytes = 0
                for spec in request.tasks {
                    if replyBytes + TaskExecutor.inlineLimit > WorkerRuntime.replyBudget {
                        var unrun = TaskResult()
                        unrun.taskId = spec.taskId
                        unrun.status = Status(code: .resourceExhausted, message: "not run: the batch's reply is full")
                        reply.results.append(unrun)
                        continue
                    }
                    let result = await running.run(spec, cluster: cluster)
                    replyBytes += result.returns.first?.inlineValue.count ?? 0
                    reply.results.append(result)
                }
                return reply
            }
            routes.add(WorkerRPC.cancelTask) { request, _ in
                var reply = CancelTaskReply()
                reply.attempted = running.cancel(request.taskId)
                return reply
            }
            ObjectOwnership.addRoutes(to: &routes, objects: objects, stored: stored, nodeID: nodeID)
            routes.add(WorkerRPC.startActor) { request, _ in
                actors.startHere(request, url: ownerAddress.url)
            }
            routes.add(WorkerRPC.actorCall) { request, _ in
                await Cluster.$ambient.withValue(cluster) { await actors.execute(request) }
            }
            routes.add(WorkerRPC.actorCallBatch) { request, _ in
                await Cluster.$ambient.withValue(cluster) { await actors.execute(batch: request, replyBudget: WorkerRuntime.replyBudget) }
            }
            routes.add(WorkerRPC.pushTask) { request, _ in
                let result = await running.run(request.task ?? TaskSpec(), cluster: cluster)
                var reply = PushTaskReply()
                reply.status = result.status
                reply.returns = result.returns
                reply.error = result.error
                reply.runMicros = result.runMicros
                return reply
            }
            // Owners on other hosts reach a worker of a tcp node over tcp (a port the system picks).
            let listen = environment[WorkerEnvironment.listenHost].map { host in (try? Address.network(host: host, port: 0))?.description ?? "tcp://\(host):0" } ?? "ipc://\(sessionDir)/worker-\(idHex.prefix(8)).sock"
            // Contexts beyond the default: an actor's calls wait in them for their turn, and
            // each caller keeps up to `StarlingActorSystem.callWindow` in flight.
            var serverSettings = TransportSettings()
            serverSettings.serverContexts = 256
            let server = try RPCServer(listeningOn: Address(listen), token: token,
                                       name: "worker \(idHex.prefix(8))", routes: routes, settings: serverSettings)
            ownerAddress.set(server.address.description)
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

/// The tasks a worker runs, so that `CancelTask` can reach them: a running task's Swift Task
/// is cancelled; a task cancelled before it started never runs.
final class RunningTasks: Sendable {
    private struct State {
        var running: [[UInt8]: Task<TaskResult, Never>] = [:]
        var cancelledEarly: Set<[UInt8]> = []
    }
    private let state = Mutex(State())

    func run(_ spec: TaskSpec, cluster: Cluster) async -> TaskResult {
        if state.withLock({ $0.cancelledEarly.remove(spec.taskId) != nil }) {
            var result = TaskResult()
            result.taskId = spec.taskId
            result.status = Status(code: .cancelled, message: "")
            return result
        }
        // Its own Task so that CancelTask can cancel it alone; started immediately on this
        // thread (no hop through the executor's queue: a short task finishes right here).
        let task = Task.immediate { await Cluster.$ambient.withValue(cluster) { await TaskExecutor.run(spec) } }
        let cancelledWhileStarting = state.withLock { state -> Bool in
            if state.cancelledEarly.remove(spec.taskId) != nil { return true }
            state.running[spec.taskId] = task
            return false
        }
        if cancelledWhileStarting { task.cancel() }
        var result = await task.value
        state.withLock { _ = $0.running.removeValue(forKey: spec.taskId) }
        if task.isCancelled, result.status?.code != .ok {
            result.status = Status(code: .cancelled, message: "")
        }
        return result
    }

    /// True when the task was running here (it is told to stop); otherwise it will not start.
    func cancel(_ taskID: [UInt8]) -> Bool {
        let task = state.withLock { state -> Task<TaskResult, Never>? in
            if let task = state.running[taskID] { return task }
            state.cancelledEarly.insert(taskID)
            return nil
        }
        task?.cancel()
        return task != nil
    }
}
