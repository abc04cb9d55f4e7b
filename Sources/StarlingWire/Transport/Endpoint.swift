import CNNG

/// Listening and dialing, with TLS options and errors that name the address.
enum Endpoint {
    /// Starts a listener; returns the bound address (port 0 resolved).
    static func listen(_ socket: nng_socket, on address: Address, tls: TLSSettings?) throws -> Address {
        var listener = nng_listener()
        try NNG.check(nng_listener_create(&listener, socket, address.description), "listen on \(address)")
        if address.scheme == .tlsTCP {
            guard let tls, let certificate = tls.certificateAndKeyFile else {
                nng_listener_close(listener)
                throw WireError.configuration("\(address) needs a certificate: set TLSSettings.certificateAndKeyFile")
            }
            try configure(certificate: certificate, ca: tls.caFile, serverName: nil, address: address,
                          setString: { nng_listener_set_string(listener, $0, $1) },
                          setInt: { nng_listener_set_int(listener, $0, $1) })
        }
        let rc = nng_listener_start(listener, 0)
        if rc == NNG.addressInUse {
            nng_listener_close(listener)
            throw WireError.configuration("cannot listen on \(address): the address is already in use (another Starling process, or pick another port)")
        }
        if rc != 0 {
            nng_listener_close(listener)
            throw WireError.nng(operation: "listen on \(address)", code: rc, detail: NNG.describe(rc))
        }
        if address.port == 0 {
            var port: Int32 = 0
            try NNG.check(nng_listener_get_int(listener, NNG.optTCPBoundPort, &port), "read bound port of \(address)")
            return address.withPort(Int(port))
        }
        return address
    }

    /// Starts a dialer that connects in the background and redials after a loss.
    static func dial(_ socket: nng_socket, to address: Address, settings: TransportSettings) throws {
        var dialer = nng_dialer()
        try NNG.check(nng_dialer_create(&dialer, socket, address.description), "dial \(address)")
        nng_dialer_set_ms(dialer, NNG.optReconnectMin, settings.reconnectMin.nngMilliseconds)
        nng_dialer_set_ms(dialer, NNG.optReconnectMax, settings.reconnectMax.nngMilliseconds)
        if address.scheme == .tlsTCP {
            guard let tls = settings.tls, tls.caFile != nil else {
                nng_dialer_close(dialer)
                throw WireError.configuration("\(address) needs TLSSettings.caFile to verify the server")
            }
            try configure(certificate: tls.certificateAndKeyFile, ca: tls.caFile, serverName: tls.serverName, address: address,
                          setString: { nng_dialer_set_string(dialer, $0, $1) },
                          setInt: { nng_dialer_set_int(dialer, $0, $1) })
        }
        let rc = nng_dialer_start(dialer, Int32(NNG_FLAG_NONBLOCK))
        if rc != 0 {
            nng_dialer_close(dialer)
            throw WireError.nng(operation: "dial \(address)", code: rc, detail: NNG.describe(rc))
        }
    }

    private static func configure(certificate: String?, ca: String?, serverName: String?, address: Address,
                                  setString: (String, String) -> Int32, setInt: (String, Int32) -> Int32) throws {
        if let ca {
            try NNG.check(setString(NNG.optTLSCAFile, ca), "load TLS CA file \(ca) for \(address)")
            try NNG.check(setInt(NNG.optTLSAuthMode, Int32(NNG_TLS_AUTH_MODE_REQUIRED.rawValue)), "require TLS peer verification for \(address)")
        }
        if let certificate {
            try NNG.check(setString(NNG.optTLSCertKeyFile, certificate), "load TLS certificate/key file \(certificate) for \(address)")
        }
        if let serverName {
            try NNG.check(setString(NNG.optTLSServerName, serverName), "set TLS server name for \(address)")
        }
    }
}
