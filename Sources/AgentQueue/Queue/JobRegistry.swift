import Synchronization

/// The jobs a worker holds right now, with their stop switches and deadlines (for heartbeats, cancel
/// requests and time budgets: one poll checks every deadline, so no job needs a timer of its own).
public final class JobRegistry: Sendable {
    private struct Entry: Sendable {
        var control: JobControl
        var deadline: ContinuousClock.Instant
        var budget: Duration
    }

    private let jobs = Mutex([Int64: Entry]())

    public init() {}

    /// Registers a job with a time budget; returns its stop switch.
    public func add(_ id: Int64, budget: Duration = .seconds(600)) -> JobControl {
        let control = JobControl()
        jobs.withLock { $0[id] = Entry(control: control, deadline: .now + budget, budget: budget) }
        return control
    }

    public func remove(_ id: Int64) {
        _ = jobs.withLock { $0.removeValue(forKey: id) }
    }

    public var ids: [Int64] { jobs.withLock { Array($0.keys) } }
    public var count: Int { jobs.withLock { $0.count } }

    /// Stops one job, if held.
    public func stop(_ id: Int64, _ reason: StopReason) {
        jobs.withLock { $0[id] }?.control.stop(reason)
    }

    /// Stops every job held.
    public func stopAll(_ reason: StopReason) {
        for entry in jobs.withLock({ Array($0.values) }) { entry.control.stop(reason) }
    }

    /// Stops the jobs past their deadline with `.timeout`.
    public func stopOverdue(now: ContinuousClock.Instant = .now) {
        for entry in jobs.withLock({ $0.values.filter { $0.deadline <= now } }) {
            entry.control.stop(.timeout(entry.budget))
        }
    }
}
