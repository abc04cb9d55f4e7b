import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 GET over a TCP socket, for `metrics_scrape`. The bench does not use
/// URLSession: FoundationNetworking would load libcurl and its TLS libraries into every
/// process of this binary (workers too), about 6 MB of resident memory each, and `idle_rss`
/// would measure the harness instead of Starling.
enum PlainHTTP {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `get` on a thread of its own: the embedded head serving the request runs on Swift's
    /// cooperative pool, which a blocking read must not hold.
    static func fetch(_ url: String) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                do { continuation.resume(returning: try get(url)) } catch { continuation.resume(throwing: error) }
            }.start()
        }
    }

    /// The body of `GET path` from `http://host:port` (to its Content-Length, or until the
    /// server closes; a 10 s silence is an error).
    static func get(_ url: String) throws -> [UInt8] {
        guard let parsed = URLComponents(string: url), parsed.scheme == "http", let host = parsed.host, let port = parsed.port else {
            throw Failure(description: "not an http://HOST:PORT URL: \(url)")
        }
        let path = parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
            throw Failure(description: "not an IPv4 address: \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect \(host):\(port): \(String(cString: strerror(errno)))") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var headerEnd: Int?
        var contentLength: Int?
        while true {
            if let headerEnd, let contentLength, response.count - headerEnd >= contentLength { break }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Failure(description: "GET \(url): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            response += buffer[..<n]
            if headerEnd == nil, let end = Self.headerEnd(response) {
                headerEnd = end
                let header = String(decoding: response[..<end], as: UTF8.self).lowercased()
                guard header.hasPrefix("http/1.1 200") || header.hasPrefix("http/1.0 200") else {
                    throw Failure(description: "GET \(url): \(header.split(separator: "\r\n").first ?? "no status line")")
                }
                contentLength = header.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
            }
        }
        guard let headerEnd else { throw Failure(description: "GET \(url): no complete response") }
        return Array(response[headerEnd...])
    }

    /// The index just past the blank line that ends the header, once it arrived.
    private static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }
}
