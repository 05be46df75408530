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
        var stoppedAt: ContinuousClock.Instant?
    }

    private let jobs = Mutex([Int64: Entry]())
    private let now: @Sendable () -> ContinuousClock.Instant
    /// How long a stopped job may take to end before its lease is let go (see `held`).
    public let abandonAfter: Duration

    /// `now` is the clock deadlines are set and checked by (tests pass their own).
    public init(abandonAfter: Duration = .seconds(30), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.abandonAfter = abandonAfter
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

    /// The attempts held, for the heartbeat. A job stopped `abandonAfter` ago that has not ended
    /// (its work ignores cancellation: a hang) is left out, so its lease runs out and it is taken
    /// back, which counts toward its quarantine (README "Reliability"); its slot stays taken until
    /// the work returns.
    public var held: [(id: Int64, attempt: Int)] {
        let cutoff = now() - abandonAfter
        return jobs.withLock { jobs in
            jobs.compactMap { id, entry in entry.stoppedAt.map { $0 <= cutoff } == true ? nil : (id, entry.attempt) }
        }
    }

    /// Jobs stopped `abandonAfter` ago that still run (left out of heartbeats).
    public var abandoned: [Int64] {
        let cutoff = now() - abandonAfter
        return jobs.withLock { jobs in jobs.compactMap { id, entry in entry.stoppedAt.map { $0 <= cutoff } == true ? id : nil } }
    }
    public var ids: [Int64] { jobs.withLock { Array($0.keys) } }
    public var count: Int { jobs.withLock { $0.count } }

    /// Whether a job is held.
    public func holds(_ id: Int64) -> Bool { jobs.withLock { $0[id] != nil } }

    /// Stops one job, if held: any attempt of it, or only `attempt` (an answer about one attempt
    /// must not stop a later attempt of the same job that this worker claimed since).
    public func stop(_ id: Int64, attempt: Int? = nil, _ reason: StopReason) {
        marked { $0 == id && (attempt == nil || $1 == attempt) }.first?.stop(reason)
    }

    /// Stops every job held.
    public func stopAll(_ reason: StopReason) {
        for control in marked({ _, _ in true }) { control.stop(reason) }
    }

    /// Stops the jobs past their deadline with `.timeout`.
    public func stopOverdue() {
        let now = now()
        let overdue = jobs.withLock { $0.filter { $0.value.deadline <= now }.map { ($0.key, $0.value.budget) } }
        for (id, budget) in overdue { stop(id, .timeout(budget)) }
    }

    /// The controls of the jobs whose id and attempt match, each marked stopped now (the first stop
    /// counts).
    private func marked(_ matches: (Int64, Int) -> Bool) -> [JobControl] {
        let now = now()
        return jobs.withLock { jobs in
            jobs.filter { matches($0.key, $0.value.attempt) }.keys.compactMap { id in
                if jobs[id]?.stoppedAt == nil { jobs[id]?.stoppedAt = now }
                return jobs[id]?.control
            }
        }
    }

    /// Applies a heartbeat's answers (`JobStore.heartbeat`) to the attempts it was asked about.
    public func apply(heartbeat answers: [Int64: Bool], asked: [(id: Int64, attempt: Int)]) {
        let attempts = Dictionary(asked.map { ($0.id, $0.attempt) }, uniquingKeysWith: { $1 })
        for (id, reason) in Self.stops(heartbeat: answers, asked: asked) { stop(id, attempt: attempts[id], reason) }
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
