#if canImport(Glibc)
import Glibc
#endif
import CNNG
import Foundation
import StarlingLog

/// One HTTP request as a handler sees it.
public struct HTTPRequest: Sendable {
    public let method: String
    /// The path and query ("/api/nodes?limit=5").
    public let uri: String
    /// The `Authorization` header, if any.
    public let authorization: String?
    public let body: [UInt8]

    /// The path without the query.
    public var path: String { String(uri.split(separator: "?", maxSplits: 1).first ?? "") }

    /// The query's `name=value` pairs (not percent-decoded beyond `+`).
    public var query: [String: String] {
        guard let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
        var pairs: [String: String] = [:]
        for item in query.split(separator: "&") {
            let parts = item.split(separator: "=", maxSplits: 1)
            pairs[String(parts[0])] = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ") : ""
        }
        return pairs
    }
}

public struct HTTPResponse: Sendable {
    public var status: UInt16
    public var contentType: String
    public var body: [UInt8]
    public var headers: [String: String] = [:]

    public init(status: UInt16 = 200, contentType: String, body: [UInt8], headers: [String: String] = [:]) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: UInt16 = 200, contentType: String = "text/plain; charset=utf-8", text: String) {
        self.init(status: status, contentType: contentType, body: Array(text.utf8))
    }
}

/// An HTTP/1.1 server on NNG's HTTP support: every request under "/" goes to one async
/// handler (which routes by path). Used by the head for metrics, health, the JSON API and the
/// dashboard.
public final class HTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    /// The port it listens on (the one the system picked when asked for 0).
    public let port: Int
    public let host: String
    // Opaque NNG handles, kept as addresses: only `close` touches them after `init`.
    private let server: UInt

    /// Listens on `host:port` (port 0: any free one).
    public init(host: String, port: Int, handler: @escaping Handler) throws {
        var url: UnsafeMutablePointer<nng_url>?
        try NNG.check(nng_url_parse(&url, "http://\(host):\(port)"), "nng_url_parse http://\(host):\(port)")
        defer { nng_url_free(url) }
        var server: OpaquePointer?
        try NNG.check(nng_http_server_hold(&server, url), "nng_http_server_hold")
        var handle: OpaquePointer?
        do {
            try NNG.check(nng_http_handler_alloc(&handle, "/", { aio in HTTPServer.serve(aio) }), "nng_http_handler_alloc")
            // Any method; every path under "/"; request bodies up to 1 MiB are read for us.
            _ = nng_http_handler_set_method(handle, nil)
            _ = nng_http_handler_set_tree(handle)
            _ = nng_http_handler_collect_body(handle, true, 1 << 20)
            let box = Unmanaged.passRetained(HandlerBox(handler)).toOpaque()
            _ = nng_http_handler_set_data(handle, box, { pointer in
                if let pointer { Unmanaged<HandlerBox>.fromOpaque(pointer).release() }
            })
            try NNG.check(nng_http_server_add_handler(server, handle), "nng_http_server_add_handler")
            try NNG.check(nng_http_server_start(server), "nng_http_server_start http://\(host):\(port)")
        } catch {
            nng_http_server_release(server)
            throw error
        }
        var address = nng_sockaddr()
        _ = nng_http_server_get_addr(server, &address)
        self.port = address.s_family == UInt16(NNG_AF_INET.rawValue) ? Int(UInt16(bigEndian: address.s_in.sa_port)) : port
        self.host = host
        self.server = UInt(bitPattern: server)
    }

    public var url: String { "http://\(host):\(port)" }

    /// Stops listening, on a thread of its own: NNG's stop waits for open connections (a
    /// browser's keep-alive one) and must not hold up the head's shutdown.
    public func close() {
        let address = server
        Thread.detachNewThread {
            guard let server = OpaquePointer(bitPattern: address) else { return }
            nng_http_server_stop(server)
            nng_http_server_release(server)
        }
    }

    private final class HandlerBox: Sendable {
        let handler: Handler
        init(_ handler: @escaping Handler) { self.handler = handler }
    }

    /// NNG's callback (on its thread): reads the request, runs the handler in a task, and
    /// completes the aio with the response.
    private static func serve(_ aio: OpaquePointer?) {
        guard let aio else { return }
        let request = OpaquePointer(nng_aio_get_input(aio, 0))
        let handlerPointer = nng_aio_get_input(aio, 1)
        guard let request, let handlerPointer,
              let data = nng_http_handler_get_data(OpaquePointer(handlerPointer)) else {
            nng_aio_finish(aio, Int32(NNG_EINTERNAL.rawValue))
            return
        }
        let handler = Unmanaged<HandlerBox>.fromOpaque(data).takeUnretainedValue().handler
        var bodyPointer: UnsafeMutableRawPointer?
        var bodySize = 0
        nng_http_req_get_data(request, &bodyPointer, &bodySize)
        let parsed = HTTPRequest(method: String(cString: nng_http_req_get_method(request)),
                                 uri: String(cString: nng_http_req_get_uri(request)),
                                 authorization: nng_http_req_get_header(request, "Authorization").map { String(cString: $0) },
                                 body: bodyPointer.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: bodySize)) } ?? [])
        let address = UInt(bitPattern: aio)
        Task {
            let response = await handler(parsed)
            guard let aio = OpaquePointer(bitPattern: address) else { return }
            var reply: OpaquePointer?
            guard nng_http_res_alloc(&reply) == 0, let reply else {
                nng_aio_finish(aio, Int32(NNG_ENOMEM.rawValue))
                return
            }
            _ = nng_http_res_set_status(reply, response.status)
            _ = nng_http_res_set_header(reply, "Content-Type", response.contentType)
            _ = nng_http_res_set_header(reply, "Cache-Control", "no-store")
            for (name, value) in response.headers { _ = nng_http_res_set_header(reply, name, value) }
            _ = response.body.withUnsafeBytes { nng_http_res_copy_data(reply, $0.baseAddress, $0.count) }
            nng_aio_set_output(aio, 0, UnsafeMutableRawPointer(reply))
            nng_aio_finish(aio, 0)
        }
    }
}
