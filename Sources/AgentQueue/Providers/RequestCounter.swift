import Synchronization

/// Requests seen per key, for the mock model's scripted faults (fail the first N, then succeed).
public final class RequestCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    public init() {}

    public func count(_ key: String) -> Int {
        counts.withLock { $0[key] ?? 0 }
    }

    /// Counts one more request for `key`; returns how many there have been, this one included.
    public func next(_ key: String) -> Int {
        counts.withLock { c in
            let n = (c[key] ?? 0) + 1
            c[key] = n
            if c.count > 100_000 { c.removeAll() }  // bounded memory in long benchmark runs
            return n
        }
    }
}
