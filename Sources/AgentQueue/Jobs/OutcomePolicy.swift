import Foundation

/// How a job's end becomes the `FinishItem` written for it: the one place that builds retries (with
/// backoff), failures and stops, for every kind of job. Pure apart from `now`, which is passed in.
public struct OutcomePolicy: Sendable {
    public var backoff: Backoff
    /// The wall clock retry times are computed from.
    public var now: @Sendable () -> Date

    public init(backoff: Backoff = Backoff(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.backoff = backoff
        self.now = now
    }

    /// Try the job again later: after `delay` (a provider's Retry-After), else after the backoff of
    /// its attempt. The queue fails it instead once `max_attempts` is reached.
    public func retry(
        _ job: ClaimedJob, error: String, after delay: Duration? = nil,
        usage: [UsageRecord]? = nil
    ) -> FinishItem {
        let wait = delay ?? backoff.delay(afterAttempt: job.attempt)
        return FinishItem(
            jobID: job.id, attempt: job.attempt, outcome: .retry, error: error,
            retryAt: now().addingTimeInterval(wait.seconds), usage: usage)
    }

    /// End the job `failed`: retrying cannot help.
    public func failed(_ job: ClaimedJob, error: String, usage: [UsageRecord]? = nil) -> FinishItem {
        FinishItem(jobID: job.id, attempt: job.attempt, outcome: .failed, error: error, usage: usage)
    }

    /// The outcome of a job its worker stopped.
    public func stopped(_ job: ClaimedJob, _ reason: StopReason, usage: [UsageRecord] = []) -> FinishItem {
        switch reason {
        case .cancelRequested:
            FinishItem(jobID: job.id, attempt: job.attempt, outcome: .cancelled, error: "cancelled", usage: usage)
        case .leaseLost:
            failed(job, error: "lease lost", usage: usage)
        case .shutdown:
            FinishItem(jobID: job.id, attempt: job.attempt, outcome: .released, usage: usage)
        case .timeout(let limit):
            retry(job, error: "job timed out after \(limit)", usage: usage)
        }
    }

    /// The outcome of a job whose work threw: its stop, if it was stopped; `failed` for a permanent
    /// fault; a retry for a transient one (honouring Retry-After) and for anything unexpected.
    public func outcome(
        of error: any Error, job: ClaimedJob, stopReason: StopReason?,
        usage: [UsageRecord]? = nil
    ) -> FinishItem {
        if let stopReason { return stopped(job, stopReason, usage: usage ?? []) }
        guard let failure = error as? GenerationError else {
            return retry(job, error: describeDatabaseError(error), usage: usage)
        }
        switch failure.kind {
        case .permanent: return failed(job, error: failure.message, usage: usage)
        case .transient: return retry(job, error: failure.message, after: failure.retryAfter, usage: usage)
        }
    }
}
