/// Retry delays: `min(cap, base * 2^(attempt-1)) * U[0.5, 1.5)` (README: How the queue works). Pure; the random
/// source is injectable so tests can pin the jitter.
public struct Backoff: Sendable, Hashable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration = .seconds(1), cap: Duration = .seconds(300)) {
        self.base = base
        self.cap = cap
    }

    /// The delay before the next attempt, after `attempt` (1-based) failed; `jitter` is in [0.5, 1.5).
    public func delay(afterAttempt attempt: Int, jitter: Double = Double.random(in: 0.5..<1.5)) -> Duration {
        let exponent = min(max(attempt - 1, 0), 40)
        let raw = base.seconds * Double(sign: .plus, exponent: exponent, significand: 1)
        let capped = min(cap.seconds, raw)
        return .milliseconds(Int64((capped * jitter * 1000).rounded()))
    }
}
