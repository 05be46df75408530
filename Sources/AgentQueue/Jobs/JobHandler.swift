import Logging

/// Runs the jobs of one kind. The worker hands `prepare` every job of the handler's kind in a claimed
/// batch (so what they need is loaded in a few statements for the whole batch), then runs each
/// prepared job in a slot of its own, racing its stop switch.
public protocol JobHandler: Sendable {
    associatedtype Prepared: Sendable

    /// What each job needs to run, with its time budget; or its outcome, when that is decided
    /// without running it (a fault loading it, an unknown agent). One entry per job.
    func prepare(_ jobs: [ClaimedJob], logger: Logger) async -> [Int64: Preparation<Prepared>]

    /// Runs one prepared job to its outcome. Never throws: every fault becomes a `FinishItem`.
    /// `stopReason` tells why the job was stopped (cancel, lost lease, shutdown, time budget), if it was.
    func run(
        _ job: ClaimedJob, _ prepared: Prepared, stopReason: @escaping @Sendable () -> StopReason?,
        logger: Logger
    ) async -> FinishItem
}

/// A claimed job after its handler prepared it.
public enum Preparation<Prepared: Sendable>: Sendable {
    /// Ready to run within `budget` (past it the job is stopped and retried).
    case ready(Prepared, budget: Duration)
    /// Decided without running: the outcome to write.
    case decided(FinishItem)
}
