import Synchronization

/// Finds remote function types by mangled name, caching lookups (a failed one costs ~100 µs).
enum FunctionRegistry {
    // Sendable without compiler proof, safe because a metatype is an immutable pointer to type metadata.
    private struct Entry: @unchecked Sendable { let type: any RemoteFunction.Type }

    private static let cache = Mutex<[String: Entry]>([:])

    /// The name a submitter sends for `F`.
    static func name<F: RemoteFunction>(of type: F.Type) -> String {
        // Every Swift type has a mangled name; the fallback only keeps this total.
        _mangledTypeName(type) ?? String(reflecting: type)
    }

    static func resolve(_ name: String) -> (any RemoteFunction.Type)? {
        if let hit = cache.withLock({ $0[name] }) { return hit.type }
        guard let type = _typeByName(name) as? any RemoteFunction.Type else { return nil }
        cache.withLock { $0[name] = Entry(type: type) }
        return type
    }
}
