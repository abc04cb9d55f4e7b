#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Starling
import StarlingCore
import StarlingHead
import StarlingNode
import StarlingWire

/// `starling`: runs the processes of a cluster. `start --head` runs a head (which is also a
/// node); `start --address HOST:PORT` runs a node that joins it. Both stay in the foreground
/// until SIGINT or SIGTERM, then stop their workers and remove their session directory.
let usage = """
usage:
  starling start --head [--port 6379] [--host 127.0.0.1] [--resources CPU=4,GPU=1] [--token-file PATH]
                 [--dashboard-host 127.0.0.1] [--dashboard-port 8265] [--node-timeout SECONDS]
                 [--heartbeat-interval SECONDS]
  starling start --address HOST:PORT [--port 0] [--host 127.0.0.1] [--resources ...] [--token-file PATH]
                 (--host 0.0.0.0 listens everywhere; --advertise-host ADDRESS says what others dial)
                 [--tls-cert CERT_AND_KEY.pem --tls-ca CA.pem]: mutual TLS (tls+tcp://) between
                 all processes; drivers and commands take $STARLING_TLS_CERT and $STARLING_TLS_CA;
                 certificates carry the DNS name "starling" (or $STARLING_TLS_SERVER_NAME)
  starling memory [--address HOST:PORT] [--token-file PATH] [--json]
  starling status [--address HOST:PORT] [--token-file PATH] [--json]
  starling logs [NAME] [--tail BYTES] [--address HOST:PORT] [--token-file PATH]
  starling list nodes|actors|tasks|workers|jobs [--json] [--address HOST:PORT] [--token-file PATH]
  starling submit [--no-wait] [--name NAME] [--address HOST:PORT] [--token-file PATH] BINARY [ARGS...]
  starling job status|logs|stop ID [--follow] [--force] [--address HOST:PORT] [--token-file PATH]
  starling stop                  stop the starling processes started on this host (recorded by pid)
  starling up CONFIG.json        bring up the cluster a config describes (provider local)
  starling down CONFIG.json      stop it and remove its files

  --resources   what this node offers (default: CPU = the number of cores)
  --labels      node labels, k=v,k2=v2
  --object-store-memory BYTES
                shared memory for large objects (default 30% of RAM)
  --token-file  the cluster token (default ~/.starling/token; the head creates it, mode 0600)

  --dashboard-host, --dashboard-port
                where the head serves HTTP: the dashboard, /metrics, /healthz, /api/
                (default 127.0.0.1:8265; port 0 picks a free one; --dashboard-port none: off)
  --node-timeout  seconds of silence after which the head declares a node dead (default 5)
  --heartbeat-interval
                seconds between a node's reports to the head (default 0.5; under --node-timeout)

  status        nodes, resources used/total, workers, actors, pending tasks, recent failures
  logs          without NAME: every node's worker logs; with NAME (worker-….log): its last
                --tail bytes (default 16384), from whichever node has it
  memory        every node's object store: use, spilled objects, objects by size, owner, copy
                kind; --address defaults to $STARLING_ADDRESS
  submit        uploads BINARY to the head and runs it there as a job's driver (with the
                cluster's address and token); streams its output and exits with its exit code,
                or with --no-wait prints the job's id and returns
  job           status ID, logs ID [--follow], stop ID [--force] of a submitted job

`starling COMMAND --help` shows one command's usage.
"""

/// One command's usage, for `starling COMMAND --help`.
let commandHelp: [String: String] = [
    "start": "starling start --head [--port 6379] [--host 127.0.0.1] [--resources CPU=4] [--labels k=v] [--object-store-memory BYTES]\n               [--token-file PATH] [--dashboard-host 127.0.0.1] [--dashboard-port 8265|0|none] [--node-timeout SECONDS]\n               [--heartbeat-interval SECONDS]\nstarling start --address HOST:PORT [--port 0] [--host 127.0.0.1] [--resources ...] [--labels ...] [--token-file PATH]\n  runs a head (which is also a node) or a node that joins one, in the foreground until SIGINT/SIGTERM\n  --host 0.0.0.0 listens on every interface; --advertise-host ADDRESS is what other hosts dial\n  (default: this host's address on the route to the head, or to the outside for a head)\n  --tls-cert PEM (certificate then key) --tls-ca PEM: every connection uses mutual TLS (tls+tcp://);\n  drivers and other commands set STARLING_TLS_CERT and STARLING_TLS_CA to the same kind of files;\n  certificates must carry the DNS name \"starling\" (or $STARLING_TLS_SERVER_NAME)",
    "status": "starling status [--address HOST:PORT] [--token-file PATH] [--json]\n  nodes, resources used/total, workers, actors, pending tasks, recent failures",
    "memory": "starling memory [--address HOST:PORT] [--token-file PATH] [--json]\n  every node's object store: use, spilled objects, objects by size, owner, copy kind",
    "logs": "starling logs [NAME] [--tail BYTES] [--address HOST:PORT] [--token-file PATH]\n  without NAME: every node's worker logs; with NAME: its last --tail bytes (default 16384)",
    "list": "starling list nodes|actors|tasks|workers|jobs [--json] [--address HOST:PORT] [--token-file PATH]\n  tasks: per job and function, pending/running/finished/failed/retried as their owners report them, and recent failures\n  workers: every node's workers (idle, running a task, hosting an actor) and queued lease requests",
    "stop": "starling stop\n  stops the starling processes `starling start` recorded on this host (by pid), and their files",
    "up": "starling up CONFIG.json\n  brings up the cluster a config describes (provider local; see cluster/local-3.json)",
    "down": "starling down CONFIG.json\n  stops the cluster `up` started from this config and removes its files",
    "submit": "starling submit [--no-wait] [--name NAME] [--submission-id ID] [--address HOST:PORT] [--token-file PATH] BINARY [ARGS...]\n  uploads BINARY to the head and runs it there as a job's driver; streams its output and exits\n  with its exit code (--no-wait: prints the job's id and returns). Options go before BINARY;\n  everything after it is the job's own arguments.",
    "job": "starling job status ID [--address HOST:PORT] [--token-file PATH]\nstarling job logs ID [--follow] [--address HOST:PORT] [--token-file PATH]\nstarling job stop ID [--force] [--address HOST:PORT] [--token-file PATH]\n  a submitted job's state, its driver's output, or stop it (SIGTERM, then SIGKILL after 5 s; --force: SIGKILL)",
]

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct StartOptions {
    var head = false
    var address: String?
    var host = "127.0.0.1"
    /// What other hosts dial when `host` is a wildcard (default: found from the route).
    var advertiseHost: String?
    var port: Int?
    var resources: ResourceSet?
    var labels: [String: String] = [:]
    var objectStoreMemory: UInt64?
    var dashboardHost = "127.0.0.1"
    var dashboardPort: Int? = 8265
    var nodeTimeout: Duration?
    var heartbeatInterval: Duration?
    static let defaultTokenFile = (ProcessInfo.processInfo.environment["HOME"] ?? "/tmp") + "/.starling/token"
    var tokenFile = StartOptions.defaultTokenFile

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let next = rest.popFirst() else { throw CLIError("\(flag) needs a value") }
            return next
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--head": head = true
            case "--address": address = try value(flag)
            case "--host": host = try value(flag)
            case "--advertise-host": advertiseHost = try value(flag)
            // TLS for every connection of this process and its workers: through the
            // environment, which the workers inherit (TLSSettings.fromEnvironment).
            case "--tls-cert", "--tls-ca":
                let path = try value(flag)
                guard FileManager.default.isReadableFile(atPath: path) else { throw CLIError("start: \(flag) \(path): no readable PEM file there") }
                setenv(flag == "--tls-cert" ? TLSSettings.certificateVariable : TLSSettings.caVariable, path, 1)
            case "--port":
                let text = try value(flag)
                guard let number = Int(text), (0...65535).contains(number) else { throw CLIError("--port \(text) is not a port number") }
                port = number
            case "--resources": resources = try Self.resources(try value(flag))
            case "--labels": labels = try Self.pairs(try value(flag), flag: flag)
            case "--token-file": tokenFile = try value(flag)
            case "--dashboard-host": dashboardHost = try value(flag)
            case "--dashboard-port":
                let text = try value(flag)
                if text == "none" { dashboardPort = nil; continue }
                guard let number = Int(text), (0...65535).contains(number) else { throw CLIError("--dashboard-port \(text) is not a port number (or none)") }
                dashboardPort = number
            case "--node-timeout":
                let text = try value(flag)
                guard let seconds = Double(text), seconds >= 0.5, seconds <= 3600 else { throw CLIError("--node-timeout \(text) is not a number of seconds between 0.5 and 3600") }
                nodeTimeout = .milliseconds(Int(seconds * 1000))
            case "--heartbeat-interval":
                let text = try value(flag)
                guard let seconds = Double(text), seconds >= 0.05, seconds <= 60 else { throw CLIError("--heartbeat-interval \(text) is not a number of seconds between 0.05 and 60") }
                heartbeatInterval = .milliseconds(Int(seconds * 1000))
            case "--object-store-memory":
                let text = try value(flag)
                guard let bytes = UInt64(text), bytes > 0 else { throw CLIError("--object-store-memory \(text) is not a positive number of bytes") }
                objectStoreMemory = bytes
            default: throw CLIError("unknown option \(flag)")
            }
        }
        guard head != (address != nil) else { throw CLIError("give either --head or --address HOST:PORT") }
        if let interval = heartbeatInterval, interval >= nodeTimeout ?? .seconds(5) {
            throw CLIError("--heartbeat-interval \(interval) must be shorter than --node-timeout \(nodeTimeout ?? .seconds(5)): every node would be declared dead")
        }
    }

    static func pairs(_ text: String, flag: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { throw CLIError("\(flag): \"\(item)\" is not name=value") }
            result[String(parts[0])] = String(parts[1])
        }
        return result
    }

    static func resources(_ text: String) throws -> ResourceSet {
        var quantities: [String: Double] = [:]
        for (name, amount) in try pairs(text, flag: "--resources") {
            guard let number = Double(amount), number >= 0, number.isFinite else {
                throw CLIError("--resources: \(name)=\(amount) is not a non-negative number")
            }
            quantities[name] = number
        }
        return ResourceSet(quantities)
    }
}

func start(_ options: StartOptions) async throws -> Int32 {
    let directory = try SessionDirectory.create()
    defer { directory.remove() }
    // Recorded for `starling stop` (which stops only processes recorded here, by pid).
    let record = ClusterLauncher.recordStart(session: directory.path)
    defer { try? FileManager.default.removeItem(atPath: record) }
    let token: ClusterToken
    if options.head {
        try? FileManager.default.createDirectory(atPath: (options.tokenFile as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        token = try ClusterToken.loadOrCreate(at: options.tokenFile)
    } else {
        token = try ClusterToken.load(from: options.tokenFile)
    }
    var head: Head?
    var headAddress: Address
    // Listening on every interface: other hosts need an address of this one that they can reach.
    var advertiseHost = options.advertiseHost
    if advertiseHost == nil, ["0.0.0.0", "::", "[::]"].contains(options.host) {
        let towards = options.address.flatMap { text in (try? Address.parse(text))?.host }
        advertiseHost = towards.flatMap { LocalAddress.toward($0) } ?? LocalAddress.toward("192.0.2.1") ?? LocalAddress.firstNonLoopback()
        guard advertiseHost != nil else {
            throw CLIError("start: --host \(options.host) listens everywhere, but no route tells which address other hosts reach; give --advertise-host ADDRESS")
        }
    }
    if options.head {
        var settings = HeadSettings(listenAddress: try Address.network(host: options.host, port: options.port ?? 6379), sessionDir: directory.path)
        settings.httpHost = options.dashboardHost
        settings.httpPort = options.dashboardPort
        settings.eventsAddress = try Address.network(host: options.host, port: 0)
        settings.advertiseHost = advertiseHost
        if let timeout = options.nodeTimeout { settings.nodeTimeout = timeout }
        if let interval = options.heartbeatInterval { settings.heartbeatInterval = interval }
        let started = Head(settings: settings, token: token)
        try await started.start()
        head = started
        let listening = await started.address!
        // The head's own node dials the head like any other node: at its reachable address.
        headAddress = listening.isWildcard ? listening.withHost(advertiseHost ?? "127.0.0.1") : listening
        print("starling head listening at \(headAddress)\(listening.isWildcard ? " (on every interface)" : "") (token \(options.tokenFile), session \(directory.path))")
        if let url = await started.dashboardURL { print("starling dashboard at \(url)") }
    } else {
        let text = options.address!
        headAddress = try Address.parse(text)
    }
    var settings = NodeSettings(sessionDir: directory.path, tokenFile: options.tokenFile, workerExecutable: nil)
    if let resources = options.resources { settings.resources = resources }
    settings.labels = options.labels
    if let bytes = options.objectStoreMemory { settings.objectStoreCapacity = bytes }
    settings.listenAddress = try Address.network(host: options.host, port: options.head ? 0 : options.port ?? 0)
    settings.headAddress = headAddress
    settings.isHead = options.head
    settings.advertiseHost = advertiseHost
    let node = NodeManager(settings: settings, token: token)
    do {
        try await node.start()
    } catch {
        await head?.stop()
        throw error
    }
    print("starling node \(node.nodeID.hex) listening at \(await node.advertisedAddress!) with \(settings.resources)")
    fflush(nil)
    // The first of SIGINT, SIGTERM (through Dispatch, so no async-signal-safety concerns) or
    // the node failing on its own ends the process.
    let (events, continuation) = AsyncStream<(code: Int32, reason: String)>.makeStream()
    var sources: [DispatchSourceSignal] = []
    for number in [SIGINT, SIGTERM] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { continuation.yield((0, number == SIGINT ? "SIGINT" : "SIGTERM")) }
        source.resume()
        sources.append(source)
    }
    let watcher = Task { continuation.yield((1, await node.failed())) }
    var iterator = events.makeAsyncIterator()
    let outcome = await iterator.next() ?? (1, "stopped")
    watcher.cancel()
    for source in sources { source.cancel() }
    print("starling stopping: \(outcome.1)")
    fflush(nil)
    await node.stop()
    await head?.stop()
    return outcome.0
}

/// `--address` (default $STARLING_ADDRESS), `--token-file` (default $STARLING_TOKEN_FILE or
/// ~/.starling/token) and `--json` of the commands that ask a running cluster.
func clientOptions(_ arguments: [String], command: String) throws -> (address: String, tokenFile: String, json: Bool) {
    var address = ProcessInfo.processInfo.environment["STARLING_ADDRESS"]
    var tokenFile = ProcessInfo.processInfo.environment["STARLING_TOKEN_FILE"] ?? StartOptions.defaultTokenFile
    var json = false
    var rest = arguments[...]
    while let flag = rest.popFirst() {
        switch flag {
        case "--address":
            guard let value = rest.popFirst() else { throw CLIError("\(command): --address needs HOST:PORT") }
            address = value
        case "--token-file":
            guard let value = rest.popFirst() else { throw CLIError("\(command): --token-file needs a path") }
            tokenFile = value
        case "--json": json = true
        default: throw CLIError("\(command): unknown option \(flag) (expected --address HOST:PORT, --token-file PATH, --json)")
        }
    }
    guard let address, !address.isEmpty else { throw CLIError("\(command): give --address HOST:PORT (or set STARLING_ADDRESS)") }
    return (address, tokenFile, json)
}

// A parent that started us from async code (Foundation.Process) may have left signals blocked
// (PITFALLS.md): unblock them so SIGTERM and SIGINT reach the Dispatch sources below.
var unblocked = sigset_t()
sigemptyset(&unblocked)
pthread_sigmask(SIG_SETMASK, &unblocked, nil)
ProcessTuning.apply()
// Started by a driver that placed its threads on one CPU: take its CPUs back.
CPUAffinity.undoInheritedPlacement()
var arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    print(usage)
    exit(2)
}
arguments.removeFirst()
// `starling COMMAND --help` (for `submit`, only before the binary: later flags are the job's).
let optionsPart = command == "submit" ? Array(arguments.prefix { $0.hasPrefix("-") }) : arguments
if optionsPart.contains("--help") || optionsPart.contains("-h"), let help = commandHelp[command] {
    print(help)
    exit(0)
}
do {
    switch command {
    case "start":
        exit(try await start(try StartOptions(arguments)))
    case "logs":
        var name: String?
        var tail: Int64 = 16_384
        var rest: [String] = []
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            if argument == "--tail" {
                guard let text = iterator.next(), let bytes = Int64(text), bytes > 0 else { throw CLIError("logs: --tail needs a positive number of bytes") }
                tail = bytes
            } else if argument.hasPrefix("--") {
                rest.append(argument)
                if argument != "--json", let value = iterator.next() { rest.append(value) }
            } else {
                name = argument
            }
        }
        let (address, tokenFile, _) = try clientOptions(rest, command: "logs")
        print(try await NodeLogs.show(address: address, tokenFile: tokenFile, name: name, tail: tail))
    case "stop":
        guard arguments.isEmpty else { throw CLIError("stop takes no arguments (it stops what `starling start` recorded in ~/.starling/started)") }
        let stopped = ClusterLauncher.stopRecorded()
        print("stopped \(stopped) starling process(es)")
    case "list":
        guard let what = arguments.first, ["nodes", "actors", "tasks", "workers", "jobs"].contains(what) else {
            throw CLIError("list: say what to list: nodes, actors, tasks, workers or jobs")
        }
        let (address, tokenFile, json) = try clientOptions(Array(arguments.dropFirst()), command: "list \(what)")
        print(try await ClusterListing.list(what, address: address, tokenFile: tokenFile, json: json))
    case "up", "down":
        guard let path = arguments.first, arguments.count == 1 else { throw CLIError("\(command): give one cluster config (for example cluster/local-3.json)") }
        let config = try ClusterConfig.load(path)
        if command == "up" {
            let cli = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            try await ClusterLauncher.up(config, cli: cli)
        } else {
            try await ClusterLauncher.down(config)
        }
    case "status":
        let (address, tokenFile, json) = try clientOptions(arguments, command: "status")
        let status = try await ClusterStatus.collect(address: address, tokenFile: tokenFile)
        print(json ? status.json : status.description)
    case "memory":
        let (address, tokenFile, json) = try clientOptions(arguments, command: "memory")
        let report = try await MemoryReport.collect(address: address, tokenFile: tokenFile)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report)
        }
    case "submit":
        var wait = true
        var name: String?
        var submissionID: String?
        var options: [String] = []
        var rest = arguments[...]
        while let flag = rest.first, flag.hasPrefix("-") {
            rest.removeFirst()
            switch flag {
            case "--no-wait": wait = false
            case "--name":
                guard let value = rest.popFirst() else { throw CLIError("submit: --name needs a name") }
                name = value
            case "--submission-id":
                guard let value = rest.popFirst() else { throw CLIError("submit: --submission-id needs an id") }
                submissionID = value
            case "--address", "--token-file":
                guard let value = rest.popFirst() else { throw CLIError("submit: \(flag) needs a value") }
                options += [flag, value]
            default:
                throw CLIError("submit: unknown option \(flag) (options go before the binary; see starling submit --help)")
            }
        }
        guard let binary = rest.popFirst() else { throw CLIError("submit: give the executable to run (starling submit [options] BINARY [ARGS...])") }
        let (address, tokenFile, _) = try clientOptions(options, command: "submit")
        let id = try await JobSubmission.submit(address: address, tokenFile: tokenFile, executable: binary, arguments: Array(rest),
                                                name: name, submissionID: submissionID)
        guard wait else {
            print(id)
            exit(0)
        }
        FileHandle.standardError.write(Data("starling: submitted job \(id); its output follows\n".utf8))
        let status = try await JobSubmission.logs(address: address, tokenFile: tokenFile, id: id, follow: true) { data in
            FileHandle.standardOutput.write(data)
        }
        FileHandle.standardError.write(Data("starling: \(status)\n".utf8))
        exit(status.state == "SUCCEEDED" ? 0 : (status.exitCode != 0 ? status.exitCode : 1))
    case "job":
        guard arguments.count >= 2, ["status", "logs", "stop"].contains(arguments[0]) else {
            throw CLIError("job: say status ID, logs ID [--follow] or stop ID [--force]")
        }
        let (action, id) = (arguments[0], arguments[1])
        var follow = false, force = false
        var options: [String] = []
        var rest = arguments.dropFirst(2)
        while let flag = rest.popFirst() {
            switch flag {
            case "--follow" where action == "logs": follow = true
            case "--force" where action == "stop": force = true
            case "--address", "--token-file":
                guard let value = rest.popFirst() else { throw CLIError("job \(action): \(flag) needs a value") }
                options += [flag, value]
            default: throw CLIError("job \(action): unknown option \(flag) (see starling job --help)")
            }
        }
        let (address, tokenFile, _) = try clientOptions(options, command: "job \(action)")
        switch action {
        case "status":
            print(try await JobSubmission.status(address: address, tokenFile: tokenFile, id: id))
        case "logs":
            _ = try await JobSubmission.logs(address: address, tokenFile: tokenFile, id: id, follow: follow) { data in
                FileHandle.standardOutput.write(data)
            }
        default:
            let stopped = try await JobSubmission.stop(address: address, tokenFile: tokenFile, id: id, force: force)
            print(stopped ? "job \(id): stopping" : "job \(id) had already finished")
        }
    case "help", "--help", "-h":
        print(usage)
    default:
        throw CLIError("unknown command \(command)")
    }
} catch {
    FileHandle.standardError.write(Data("starling: \(error)\n".utf8))
    exit(error is CLIError ? 2 : 1)
}
