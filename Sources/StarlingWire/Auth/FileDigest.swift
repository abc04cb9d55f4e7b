#if canImport(Glibc)
import Glibc
#endif
import CMbedCrypto

/// SHA-256 of files and byte strings (mbedcrypto): how a job's executable is named on the cluster.
public enum FileDigest {
    /// The SHA-256 of the file at `path`, read in 1 MiB pieces.
    public static func sha256(ofFileAt path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw WireError.configuration("cannot read \(path) to hash it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var context = mbedtls_md_context_t()
        mbedtls_md_init(&context)
        defer { mbedtls_md_free(&context) }
        guard mbedtls_md_setup(&context, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) == 0,
              mbedtls_md_starts(&context) == 0 else {
            throw WireError.configuration("mbedcrypto has no SHA-256")
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw WireError.configuration("reading \(path) failed: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            _ = buffer.withUnsafeBufferPointer { mbedtls_md_update(&context, $0.baseAddress, count) }
        }
        var digest = [UInt8](repeating: 0, count: 32)
        _ = digest.withUnsafeMutableBufferPointer { mbedtls_md_finish(&context, $0.baseAddress) }
        return digest
    }

    /// The SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        let rc = bytes.withUnsafeBufferPointer { input in
            digest.withUnsafeMutableBufferPointer {
                mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), input.baseAddress, input.count, $0.baseAddress)
            }
        }
        precondition(rc == 0, "mbedcrypto has no SHA-256 (mbedtls_md returned \(rc))")
        return digest
    }
}
