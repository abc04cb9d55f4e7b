import CNNG
import Foundation

/// The one door to libnng's error codes: every nng call that returns `int` goes through here.
enum NNG {
    // Option names, spelled once (nng's `#define`s are not all imported as Swift strings).
    static let optRecvMaxSize = "recv-size-max"
    static let optReconnectMin = "reconnect-time-min"
    static let optReconnectMax = "reconnect-time-max"
    static let optReqResendTime = "req:resend-time"
    static let optTLSCertKeyFile = "tls-cert-key-file"
    static let optTLSCAFile = "tls-ca-file"
    static let optTLSServerName = "tls-server-name"
    static let optTLSAuthMode = "tls-authmode"
    static let optTCPBoundPort = "tcp-bound-port"
    static let optSubscribe = "sub:subscribe"

    static let timedOut = Int32(NNG_ETIMEDOUT.rawValue)
    static let closedCode = Int32(NNG_ECLOSED.rawValue)
    static let cancelledCode = Int32(NNG_ECANCELED.rawValue)
    static let refused = Int32(NNG_ECONNREFUSED.rawValue)
    static let addressInUse = Int32(NNG_EADDRINUSE.rawValue)
    static let messageSize = Int32(NNG_EMSGSIZE.rawValue)
    static let connectionReset = Int32(NNG_ECONNRESET.rawValue)
    static let connectionShutdown = Int32(NNG_ECONNSHUT.rawValue)

    static func describe(_ code: Int32) -> String {
        String(cString: nng_strerror(code))
    }

    /// Throws `WireError.nng` naming the operation unless `code` is 0.
    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
        guard code != 0 else { return }
        throw WireError.nng(operation: operation(), code: code, detail: describe(code))
    }

    /// Closes a socket on a thread of its own, without waiting. libnng 1.5.2 can hang in
    /// nng_close (nanomsg/nng#1543, #1813: its reaper waits on an aio task prepared but never
    /// started); a hung close must not hold a thread of Swift's cooperative pool (two here).
    static func closeInBackground(_ socket: nng_socket, then: (@Sendable () -> Void)? = nil) {
        Thread.detachNewThread {
            nng_close(socket)
            then?()
        }
    }
}
