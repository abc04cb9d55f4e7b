#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The shared secret every process of a cluster proves it knows (HMAC-SHA256 handshake).
///
/// The head creates it once (32 random bytes, hex in a file of mode 0600); nodes, drivers and
/// the CLI read it from that file. The token itself never crosses the wire.
/// ```swift
/// let token = try ClusterToken.loadOrCreate(at: "/tmp/starling/session/token")
/// ```
public struct ClusterToken: Sendable, Equatable {
    /// Raw key bytes.
    let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 16 else {
            throw WireError.configuration("a cluster token needs at least 16 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// A new random 32-byte token.
    public static func generate() -> ClusterToken {
        // Safe: 32 >= 16.
        ClusterToken(unchecked: randomBytes(32))
    }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// The token as lowercase hex (the file format).
    public var hex: String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Parses the hex form written by `write(to:)`.
    public init(hex: String) throws {
        let text = hex.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.count % 2 == 0, text.count >= 32 else {
            throw WireError.configuration("a cluster token is at least 32 hex digits, got \(text.count) characters")
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else {
                throw WireError.configuration("the cluster token has a non-hex character near \"\(text[index..<next])\"")
            }
            out.append(byte)
            index = next
        }
        try self.init(bytes: out)
    }

    /// Reads a token file, refusing one that others can read.
    public static func load(from path: String) throws -> ClusterToken {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw WireError.configuration("cannot read the cluster token file \(path): \(String(cString: strerror(errno))); start the head first or pass --token-file")
        }
        if info.st_mode & 0o077 != 0 {
            throw WireError.configuration("the cluster token file \(path) is accessible by other users (mode \(String(info.st_mode & 0o777, radix: 8))); run: chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw WireError.configuration("cannot read the cluster token file \(path)")
        }
        do {
            return try ClusterToken(hex: text)
        } catch let WireError.configuration(detail) {
            throw WireError.configuration("\(path): \(detail)")
        }
    }

    /// Writes the token to a new file with mode 0600 (fails if the file exists).
    public func write(to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw WireError.configuration("cannot create the cluster token file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let line = Array((hex + "\n").utf8)
        let written = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else {
            throw WireError.configuration("cannot write the cluster token file \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Loads the token at `path`, or creates one there if there is none.
    public static func loadOrCreate(at path: String) throws -> ClusterToken {
        if FileManager.default.fileExists(atPath: path) { return try load(from: path) }
        let token = generate()
        do {
            try token.write(to: path)
            return token
        } catch {
            // Another process may have created it between the check and the create.
            if FileManager.default.fileExists(atPath: path) { return try load(from: path) }
            throw error
        }
    }
}
