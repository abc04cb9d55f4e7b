#if canImport(Glibc)
import Glibc
#endif

/// Every transport tunable, declared once with its default and why.
///
/// Override per process by passing a modified value, e.g.
/// ```swift
/// var settings = TransportSettings.default
/// settings.callTimeout = .seconds(30)
/// ```
public struct TransportSettings: Sendable, Equatable {
    /// Largest message a socket accepts or sends. NNG 1.5.2 defaults to unlimited, which lets
    /// one bad peer make us allocate without bound. Large objects travel in chunks well below
    /// this, so it only has to fit a chunk plus headers.
    public var maxMessageSize: Int = 80 << 20

    /// Default deadline for one RPC when the caller gives none.
    public var callTimeout: Duration = .seconds(60)

    /// How long `connect` waits for the first connection before failing.
    public var connectTimeout: Duration = .seconds(5)

    /// NNG redials a lost connection after this, doubling up to `reconnectMax`.
    public var reconnectMin: Duration = .milliseconds(10)
    public var reconnectMax: Duration = .milliseconds(500)

    /// Server contexts: how many requests one endpoint works on at once.
    public var serverContexts: Int = 64

    /// Deadline for the authentication handshake on a new connection.
    public var handshakeTimeout: Duration = .seconds(5)

    /// Fail calls in flight with `WireError.closed` when the connection drops, instead of
    /// letting NNG resend them on the next connection (which could run a request twice).
    public var failCallsOnDisconnect: Bool = true

    /// TLS for `tls+tcp://` addresses (ignored for others). Defaults to the process's
    /// environment (`TLSSettings.fromEnvironment`), so every process of a cluster started with
    /// the same variables speaks TLS, workers included.
    public var tls: TLSSettings?

    public init() { tls = TLSSettings.fromEnvironment }

    public static let `default` = TransportSettings()
}

/// Certificates for `tls+tcp://` endpoints, as PEM files.
public struct TLSSettings: Sendable, Equatable {
    /// The variable naming this process's certificate followed by its private key (PEM).
    public static let certificateVariable = "STARLING_TLS_CERT"
    /// The variable naming the CA certificates that peers' certificates must chain to (PEM).
    public static let caVariable = "STARLING_TLS_CA"
    /// The variable naming the DNS name every server's certificate carries (default
    /// "starling"). Nodes are dialled by IP address, which libnng's mbedtls does not match
    /// against certificates, so a cluster's certificates name the cluster instead.
    public static let serverNameVariable = "STARLING_TLS_SERVER_NAME"

    /// TLS from `STARLING_TLS_CERT` and `STARLING_TLS_CA`; nil when neither is set. With a CA,
    /// peers must present certificates too (mutual TLS): give every process both.
    public static var fromEnvironment: TLSSettings? {
        let certificate = getenv(certificateVariable).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        let ca = getenv(caVariable).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        guard certificate != nil || ca != nil else { return nil }
        let name = getenv(serverNameVariable).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "starling"
        return TLSSettings(certificateAndKeyFile: certificate, caFile: ca, serverName: name)
    }

    /// This endpoint's certificate followed by its private key (one PEM file).
    public var certificateAndKeyFile: String?
    /// CA certificates used to verify the peer.
    public var caFile: String?
    /// Name expected in the server certificate (dialers).
    public var serverName: String?

    public init(certificateAndKeyFile: String? = nil, caFile: String? = nil, serverName: String? = nil) {
        self.certificateAndKeyFile = certificateAndKeyFile
        self.caFile = caFile
        self.serverName = serverName
    }
}

extension Duration {
    /// Milliseconds for NNG, clamped to its `int32_t` range: 24.8 days at most, which is what a
    /// call that may wait as long as it likes (asking for a year) gets.
    var nngMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow || whole >= Int64(Int32.max) { return seconds < 0 ? 0 : Int32.max }
        return Int32(clamping: max(whole + attoseconds / 1_000_000_000_000_000, 0))
    }
}
