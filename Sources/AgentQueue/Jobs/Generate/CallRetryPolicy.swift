/// When a failed model call is repeated inside its job (pure): a transient fault that streamed
/// nothing, within the job's `max_retries`, after the provider's Retry-After or else a doubling delay
/// with ±20 % jitter, and never a wait longer than `longestWait` (the job retries later instead,
/// freeing its slot). Otherwise the fault ends the attempt and `OutcomePolicy` decides.
public struct CallRetryPolicy: Sendable, Hashable {
    /// The first delay without Retry-After.
    public var base: Duration
    public var longestWait: Duration

    public init(base: Duration = .milliseconds(500), longestWait: Duration = .seconds(20)) {
        self.base = base
        self.longestWait = longestWait
    }

    /// How long to wait before repeating the call after `failure`, the `repeats`-th repeat so far;
    /// nil: do not repeat it.
    public func wait(
        after failure: GenerationError, repeats: Int, maxRetries: Int,
        jitter: Double = Double.random(in: 0.8...1.2)
    ) -> Duration? {
        guard failure.retryableCall, repeats < maxRetries else { return nil }
        let wait = failure.retryAfter ?? base * Double(1 << min(repeats, 5)) * jitter
        return wait <= longestWait ? wait : nil
    }
}
