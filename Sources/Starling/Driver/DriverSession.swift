#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingHead
import StarlingLog
import StarlingNode
import StarlingWire

/// What a driver runs on: a head and a node inside its own process (embedded), or a running
/// cluster it joined. Either way it has a job registered at the head and a local node to ask
/// for leases.
struct DriverSession: Sendable {
    let head: RPCClient
    let node: RPCClient
    let nodeID: UniqueID
    let jobID: UniqueID
    let token: ClusterToken
    /// Where this driver serves the objects it owns to borrowers (tasks, actors, other nodes).
    let ownerListen: Address
    private let embedded: Embedded?

    private struct Embedded: Sendable {
        let head: Head
        let node: NodeManager
        let directory: SessionDirectory
    }

    /// Starts a head and a node in this process; workers run this executable.
    static func embedded(_ options: Starling.EmbeddedOptions) async throws -> DriverSession {
        let directory = try SessionDirectory.create()
        var head: Head?
        var node: NodeManager?
        do {
            let token = try ClusterToken.loadOrCreate(at: directory.tokenFile)
            var headSettings = HeadSettings(listenAddress: try Address("ipc://\(directory.path)/head.sock"), sessionDir: directory.path)
            headSettings.httpPort = options.dashboardPort
            headSettings.eventsAddress = try Address("ipc://\(directory.path)/events.sock")
            let started = Head(settings: headSettings, token: token)
            head = started
            try await started.start()
            guard let headAddress = await started.address else { throw StarlingError.cluster("the embedded head did not start") }
            if let url = await started.dashboardURL { FileHandle.standardError.write(Data("starling: dashboard at \(url)\n".utf8)) }
            var settings = NodeSettings(sessionDir: directory.path, tokenFile: directory.tokenFile)
            if let resources = options.resources { settings.resources = ResourceSet(resources) }
            if let timeout = options.idleWorkerTimeout { settings.idleWorkerTimeout = timeout }
            if let capacity = options.objectStoreCapacity { settings.objectStoreCapacity = capacity }
            settings.headAddress = headAddress
            settings.isHead = true
            let localNode = NodeManager(settings: settings, token: token)
            node = localNode
            try await localNode.start()
            guard let nodeAddress = await localNode.address else { throw StarlingError.cluster("the embedded node did not start") }
            let (headClient, nodeClient, jobID) = try await connect(head: headAddress, node: nodeAddress, token: token, executable: nil)
            return DriverSession(head: headClient, node: nodeClient, nodeID: localNode.nodeID, jobID: jobID, token: token,
                                 ownerListen: try Address("ipc://\(directory.path)/driver.sock"),
                                 embedded: Embedded(head: started, node: localNode, directory: directory))
        } catch {
            await node?.stop()
            await head?.stop()
            directory.remove()
            throw error
        }
    }

    /// Joins the cluster whose head is at `address` ("HOST:PORT" or a full NNG URL), with the
    /// token from `tokenFile`. The job's executable (this one) is uploaded if the head lacks it.
    static func join(address: String, tokenFile: String) async throws -> DriverSession {
        let headAddress: Address
        do {
            headAddress = try Address.parse(address)
        } catch {
            throw StarlingError.cluster("STARLING_ADDRESS \(address) is not an address: \(error)")
        }
        let token: ClusterToken
        do {
            token = try ClusterToken.load(from: tokenFile)
        } catch {
            throw StarlingError.cluster("cannot read the cluster token \(tokenFile) (set STARLING_TOKEN_FILE to the head's token file): \(error)")
        }
        let head = try await connectOrExplain(headAddress, token: token, what: "the head")
        do {
            let nodes = try await head.call(HeadRPC.listNodes, ListNodesRequest()).nodes.filter { $0.state == .alive }
            let info = try await head.call(HeadRPC.getClusterInfo, GetClusterInfoRequest())
            let hostname = ProcessInfo.processInfo.hostName
            let local = nodes.first { $0.hostname == hostname && $0.isHead }
                ?? nodes.first { $0.hostname == hostname }
                ?? nodes.first { $0.nodeId == info.headNodeId }
                ?? nodes.first
            guard let local, let url = local.address?.url else {
                throw StarlingError.cluster("the cluster at \(headAddress) has no live node to run tasks on")
            }
            head.close()
            let (headClient, nodeClient, jobID) = try await connect(head: headAddress, node: try Address(url), token: token,
                                                                     executable: NodeSettings.currentExecutable)
            // Reachable where the node is: workers on other hosts ask this driver for its objects.
            let host = (try? Address(url))?.host ?? "127.0.0.1"
            return DriverSession(head: headClient, node: nodeClient, nodeID: UniqueID(bytes: local.nodeId), jobID: jobID,
                                 token: token, ownerListen: try Address.network(host: host, port: 0), embedded: nil)
        } catch {
            head.close()
            throw error
        }
    }

    private static func connectOrExplain(_ address: Address, token: ClusterToken, what: String) async throws -> RPCClient {
        do {
            return try await RPCClient.connect(to: address, token: token, name: "driver")
        } catch {
            throw StarlingError.cluster("cannot connect to \(what) at \(address): \(error)")
        }
    }

    /// Registers the job (uploading `executable` if the head lacks it) and connects to the node.
    private static func connect(head headAddress: Address, node nodeAddress: Address, token: ClusterToken,
                                executable: String?) async throws -> (RPCClient, RPCClient, UniqueID) {
        let head = try await connectOrExplain(headAddress, token: token, what: "the head")
        do {
            var job = JobInfo()
            job.jobId = UniqueID.random().bytes
            job.name = (CommandLine.arguments.first ?? "job").split(separator: "/").last.map(String.init) ?? "job"
            // Set by the head for a driver it started for `starling submit`: links the two.
            job.submissionId = ProcessInfo.processInfo.environment["STARLING_SUBMISSION_ID"] ?? ""
            var hash: [UInt8] = []
            if let executable {
                hash = try FileDigest.sha256(ofFileAt: executable)
                job.executableHash = hash
                job.executableName = job.name
                job.executableSize = UInt64((try? FileManager.default.attributesOfItem(atPath: executable)[.size] as? NSNumber)??.uint64Value ?? 0)
            }
            var request = RegisterJobRequest()
            request.job = job
            let reply = try await head.call(HeadRPC.registerJob, request)
            if reply.executableNeeded, let executable {
                try await upload(executable, hash: hash, name: job.name, to: head)
            }
            let node = try await connectOrExplain(nodeAddress, token: token, what: "the local node")
            return (head, node, UniqueID(bytes: reply.jobId))
        } catch {
            head.close()
            throw error
        }
    }

    /// Uploads the executable at `path` to the head in chunks (the head checks its SHA-256).
    static func upload(_ path: String, hash: [UInt8], name: String, to head: RPCClient) async throws {
        guard let file = FileHandle(forReadingAtPath: path) else { throw StarlingError.cluster("cannot read \(path) to upload it") }
        defer { try? file.close() }
        let size = try file.seekToEnd()
        var offset: UInt64 = 0
        while offset < size {
            try file.seek(toOffset: offset)
            let data = try file.read(upToCount: 4 << 20) ?? Data()
            guard !data.isEmpty else { throw StarlingError.cluster("\(path) shrank while it was uploaded") }
            var request = UploadExecutableRequest()
            request.executableHash = hash
            request.totalSize = size
            request.offset = offset
            request.data = [UInt8](data)
            request.executableName = name
            let reply = try await head.call(HeadRPC.uploadExecutable, request, timeout: .seconds(60))
            if reply.complete { return }
            offset = reply.received
        }
    }

    /// Marks the job finished (the head stops its workers everywhere), closes the connections
    /// and, when embedded, stops the node and head and removes the session directory.
    func close(failure: String?) async {
        var finished = MarkJobFinishedRequest()
        finished.jobId = jobID.bytes
        finished.exitCode = failure == nil ? 0 : 1
        finished.message = failure ?? ""
        if embedded == nil {
            _ = try? await head.call(HeadRPC.markJobFinished, finished, timeout: .seconds(5))
        }
        node.close()
        head.close()
        if let embedded {
            await embedded.node.stop()
            await embedded.head.stop()
            embedded.directory.remove()
        }
    }
}
