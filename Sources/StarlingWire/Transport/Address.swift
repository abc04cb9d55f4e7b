/// A validated NNG endpoint address: `ipc:///path`, `tcp://host:port`, `tls+tcp://host:port`,
/// or `inproc://name`.
public struct Address: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case ipc, tcp, inproc
        case tlsTCP = "tls+tcp"
    }

    public let scheme: Scheme
    /// Everything after `scheme://`.
    public let rest: String

    public init(_ string: String) throws {
        guard let range = string.range(of: "://") else {
            throw WireError.badAddress(string, detail: "expected scheme://…, e.g. tcp://127.0.0.1:6380 or ipc:///tmp/x.sock")
        }
        let schemeText = String(string[..<range.lowerBound])
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw WireError.badAddress(string, detail: "unknown scheme \"\(schemeText)\"; use tcp, tls+tcp, ipc or inproc")
        }
        let rest = String(string[range.upperBound...])
        guard !rest.isEmpty else { throw WireError.badAddress(string, detail: "nothing after \(schemeText)://") }
        if scheme == .tcp || scheme == .tlsTCP {
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
                throw WireError.badAddress(string, detail: "expected host:port with a port from 0 to 65535")
            }
        }
        if scheme == .ipc, rest.utf8.count > 107 {
            throw WireError.badAddress(string, detail: "ipc paths are limited to 107 bytes by the kernel")
        }
        self.scheme = scheme
        self.rest = rest
    }

    public var description: String { "\(scheme.rawValue)://\(rest)" }

    /// `HOST:PORT` on the network: `tls+tcp` when this process has TLS configured
    /// (`STARLING_TLS_CERT`), else `tcp`.
    public static func network(host: String, port: Int) throws -> Address {
        try Address("\(TLSSettings.fromEnvironment?.certificateAndKeyFile != nil ? "tls+tcp" : "tcp")://\(host):\(port)")
    }

    /// A full address (`tcp://…`, `tls+tcp://…`) or `HOST:PORT`, which gets the scheme of
    /// `network(host:port:)` (plain tcp unless this process has TLS configured).
    public static func parse(_ text: String) throws -> Address {
        if text.contains("://") { return try Address(text) }
        let scheme = TLSSettings.fromEnvironment?.certificateAndKeyFile != nil ? "tls+tcp" : "tcp"
        return try Address("\(scheme)://\(text)")
    }

    /// `host:port` for tcp addresses with the port replaced (for port 0 binds).
    func withPort(_ port: Int) -> Address {
        guard scheme == .tcp || scheme == .tlsTCP, let colon = rest.lastIndex(of: ":") else { return self }
        // Safe: built from a validated address with a numeric port.
        return (try? Address("\(scheme.rawValue)://\(rest[..<colon]):\(port)")) ?? self
    }

    /// The tcp port, if any.
    public var port: Int? {
        guard scheme == .tcp || scheme == .tlsTCP, let colon = rest.lastIndex(of: ":") else { return nil }
        return Int(rest[rest.index(after: colon)...])
    }

    /// True for a tcp address on every interface (0.0.0.0 or [::]): fine to listen on, not to
    /// hand to another host.
    public var isWildcard: Bool { host == "0.0.0.0" || host == "[::]" || host == "::" }

    /// The address with another host (tcp only), e.g. a wildcard listener's reachable address.
    public func withHost(_ newHost: String) -> Address {
        guard scheme == .tcp || scheme == .tlsTCP, let port else { return self }
        return (try? Address("\(scheme.rawValue)://\(newHost):\(port)")) ?? self
    }

    /// The host of a tcp address ("127.0.0.1", "[::1]"); nil for ipc and inproc.
    public var host: String? {
        guard scheme == .tcp || scheme == .tlsTCP, let colon = rest.lastIndex(of: ":") else { return nil }
        return String(rest[..<colon])
    }
}
