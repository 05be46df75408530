import Synchronization

/// The jobs a worker holds right now, with their attempts, stop switches and deadlines (for
/// heartbeats, cancel requests and time budgets: one check reads every deadline, so no job needs a
/// timer of its own). Keyed by job id; the attempt tells a re-claimed job from its stale earlier run.
public final class JobRegistry: Sendable {
    private struct Entry: Sendable {
        var attempt: Int
        var control: JobControl
        var deadline: ContinuousClock.Instant
        var budget: Duration
    }

    private let jobs = Mutex([Int64: Entry]())
    private let now: @Sendable () -> ContinuousClock.Instant

    /// `now` is the clock deadlines are set and checked by (tests pass their own).
    public init(now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.now = now
    }

    /// Registers an attempt of a job with a time budget; returns its stop switch. An earlier attempt
    /// still registered (this worker lost the lease and claimed the job again) is stopped.
    public func add(_ id: Int64, attempt: Int, budget: Duration = .seconds(600)) -> JobControl {
        let control = JobControl()
        let deadline = now() + budget
        let replaced = jobs.withLock { jobs -> JobControl? in
            let old = jobs[id]
            jobs[id] = Entry(attempt: attempt, control: control, deadline: deadline, budget: budget)
            return old?.control
        }
        replaced?.stop(.leaseLost)
        return control
    }

    /// Forgets an attempt (a later attempt of the same job stays).
    public func remove(_ id: Int64, attempt: Int) {
        jobs.withLock { jobs in
            if jobs[id]?.attempt == attempt { jobs.removeValue(forKey: id) }
        }
    }

    /// The attempts held, for the heartbeat.
    public var held: [(id: Int64, attempt: Int)] { jobs.withLock { $0.map { ($0.key, $0.value.attempt) } } }
    public var ids: [Int64] { jobs.withLock { Array($0.keys) } }
    public var count: Int { jobs.withLock { $0.count } }

    /// Whether a job is held.
    public func holds(_ id: Int64) -> Bool { jobs.withLock { $0[id] != nil } }

    /// Stops one job, if held.
    public func stop(_ id: Int64, _ reason: StopReason) {
        jobs.withLock { $0[id] }?.control.stop(reason)
    }

    /// Stops every job held.
    public func stopAll(_ reason: StopReason) {
        for entry in jobs.withLock({ Array($0.values) }) { entry.control.stop(reason) }
    }

    /// Stops the jobs past their deadline with `.timeout`.
    public func stopOverdue() {
        let now = now()
        for entry in jobs.withLock({ $0.values.filter { $0.deadline <= now } }) {
            entry.control.stop(.timeout(entry.budget))
        }
    }

    /// Applies a heartbeat's answers (`JobStore.heartbeat`) to the attempts it was asked about.
    public func apply(heartbeat answers: [Int64: Bool], asked: [(id: Int64, attempt: Int)]) {
        for (id, reason) in Self.stops(heartbeat: answers, asked: asked) { stop(id, reason) }
    }

    /// What a heartbeat's answers mean (pure): a job missing from them was taken back (`leaseLost`);
    /// `true` means its cancel was requested; `false` that it is still ours.
    public static func stops(heartbeat answers: [Int64: Bool], asked: [(id: Int64, attempt: Int)]) -> [(Int64, StopReason)] {
        asked.compactMap { job in
            switch answers[job.id] {
            case nil: (job.id, .leaseLost)
            case true?: (job.id, .cancelRequested)
            case false?: nil
            }
        }
    }
}
