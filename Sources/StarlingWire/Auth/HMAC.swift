import CMbedCrypto

/// HMAC-SHA256 from mbedcrypto (the library already under libnng's TLS): no home-made crypto.
enum HMACSHA256 {
    static let size = 32

    static func mac(key: [UInt8], parts: [[UInt8]]) -> [UInt8] {
        let input = parts.flatMap { $0 }
        var output = [UInt8](repeating: 0, count: size)
        let info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256)
        let rc = key.withUnsafeBufferPointer { k in
            input.withUnsafeBufferPointer { i in
                output.withUnsafeMutableBufferPointer { o in
                    mbedtls_md_hmac(info, k.baseAddress, k.count, i.baseAddress, i.count, o.baseAddress)
                }
            }
        }
        // mbedtls_md_hmac fails only for a null md_info, i.e. a library built without SHA-256.
        precondition(rc == 0, "mbedcrypto has no SHA-256 (mbedtls_md_hmac returned \(rc))")
        return output
    }

    /// Compares in time independent of where the first difference is.
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

/// Fresh random bytes from the system generator (getrandom).
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}
