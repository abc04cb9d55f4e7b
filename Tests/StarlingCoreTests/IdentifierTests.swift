import Testing
@testable import StarlingCore

@Suite("Identifiers")
struct IdentifierTests {
    @Test("hex round-trips and rejects what is not hex")
    func hexRoundTrip() {
        for _ in 0..<100 {
            let id = UniqueID.random()
            #expect(UniqueID(hex: id.hex) == id)
            #expect(id.hex.count == 32)
            #expect(id.short == String(id.hex.prefix(8)))
        }
        #expect(UniqueID(hex: "") == nil)
        #expect(UniqueID(hex: "abc") == nil)
        #expect(UniqueID(hex: "zz") == nil)
        #expect(UniqueID(hex: "0aFF")?.bytes == [0x0a, 0xff])
    }
}
