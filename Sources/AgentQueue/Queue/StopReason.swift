import Foundation

/// Why a worker stops a job before it finished on its own.
public enum StopReason: Sendable, Hashable {
    /// `agentq.cancel` asked for it: the job ends `cancelled`.
    case cancelRequested
    /// The heartbeat found the job taken back: nothing this worker writes for it applies any more.
    case leaseLost
    /// Graceful shutdown ran out of grace: the job goes back to the queue, its attempt not counted.
    case shutdown
    /// The job ran past its time budget: retried like a transient fault.
    case timeout(Duration)

    /// The finish item that records this stop; `backoff` spaces out the retry of a timed-out job.
    func finishItem(for job: ClaimedJob, usage: [UsageRecord], backoff: Backoff = Backoff()) -> FinishItem {
        switch self {
        case .cancelRequested:
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .cancelled, error: "cancelled", usage: usage)
        case .leaseLost:
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .failed, error: "lease lost", usage: usage)
        case .shutdown:
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .released, usage: usage)
        case .timeout(let limit):
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .retry, error: "job timed out after \(limit)",
                              retryAt: Date().addingTimeInterval(backoff.delay(afterAttempt: job.attempt).seconds), usage: usage)
        }
    }
}
