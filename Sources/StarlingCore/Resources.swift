/// An amount of each named resource: `CPU`, `GPU`, `memory` (bytes), or any custom name.
///
/// ```swift
/// let ask: ResourceSet = ["CPU": 1, "GPU": 0.5]
/// node.available.fits(ask)
/// ```
public struct ResourceSet: Sendable, Hashable, CustomStringConvertible, ExpressibleByDictionaryLiteral {
    /// Quantities by name; zero entries are dropped.
    public private(set) var quantities: [String: Double]

    /// Tolerance for float comparisons of fractional resources (0.1 + 0.2 fits 0.3).
    static let epsilon = 1e-9

    public init(_ quantities: [String: Double] = [:]) {
        self.quantities = quantities.filter { $0.value != 0 }
    }

    public init(dictionaryLiteral elements: (String, Double)...) {
        self.init(Dictionary(elements, uniquingKeysWith: +))
    }

    public subscript(name: String) -> Double {
        quantities[name] ?? 0
    }

    public var isEmpty: Bool { quantities.isEmpty }

    /// True when every quantity asked is available here.
    public func fits(_ demand: ResourceSet) -> Bool {
        demand.quantities.allSatisfy { name, amount in self[name] + Self.epsilon >= amount }
    }

    public static func + (a: ResourceSet, b: ResourceSet) -> ResourceSet {
        ResourceSet(a.quantities.merging(b.quantities, uniquingKeysWith: +))
    }

    public static func - (a: ResourceSet, b: ResourceSet) -> ResourceSet {
        ResourceSet(a.quantities.merging(b.quantities.mapValues { -$0 }, uniquingKeysWith: +)
            .mapValues { abs($0) < epsilon ? 0 : $0 })
    }

    /// Names with a negative quantity (a demand or a bad config).
    public var negativeNames: [String] {
        quantities.filter { $0.value < 0 }.keys.sorted()
    }

    /// `{CPU: 2, memory: 1.0 GiB}`: sorted names, memory in readable units.
    public var description: String {
        let parts = quantities.keys.sorted().map { name -> String in
            let value = quantities[name]!
            if name == "memory" || name == "object_store_memory" { return "\(name): \(Self.bytes(value))" }
            return "\(name): \(value == value.rounded() ? String(Int(value)) : String(value))"
        }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = value
        var unit = 0
        while v >= 1024, unit < units.count - 1 { v /= 1024; unit += 1 }
        return unit == 0 ? "\(Int(v)) B" : String(format: "%.1f %@", v, units[unit])
    }
}

import Foundation
