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

    /// TLS for `tls+tcp://` addresses (ignored for others).
    public var tls: TLSSettings? = nil

    public init() {}

    public static let `default` = TransportSettings()
}

/// Certificates for `tls+tcp://` endpoints, as PEM files.
public struct TLSSettings: Sendable, Equatable {
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
    /// Milliseconds for NNG, clamped to Int32 (NNG durations are `int32_t` ms).
    var nngMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(ms, 0))
    }
}
