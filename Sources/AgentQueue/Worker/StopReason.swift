/// Why a worker stops a job before it finished on its own (`OutcomePolicy.stopped` gives the
/// outcome each one writes).
public enum StopReason: Sendable, Hashable {
    /// `agentq.cancel` asked for it: the job ends `cancelled`.
    case cancelRequested
    /// The heartbeat found the job taken back: nothing this worker writes for it applies any more.
    case leaseLost
    /// Graceful shutdown ran out of grace: the job goes back to the queue, its attempt not counted.
    case shutdown
    /// The job ran past its time budget: retried like a transient fault.
    case timeout(Duration)
}
