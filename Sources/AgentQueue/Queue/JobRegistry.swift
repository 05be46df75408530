import Synchronization

/// The jobs a worker holds right now, with their stop switches (for heartbeats and cancel requests).
public final class JobRegistry: Sendable {
    private let jobs = Mutex([Int64: JobControl]())

    public init() {}

    public func add(_ id: Int64) -> JobControl {
        let control = JobControl()
        jobs.withLock { $0[id] = control }
        return control
    }

    public func remove(_ id: Int64) {
        _ = jobs.withLock { $0.removeValue(forKey: id) }
    }

    public var ids: [Int64] { jobs.withLock { Array($0.keys) } }
    public var count: Int { jobs.withLock { $0.count } }

    /// Stops one job, if held.
    public func stop(_ id: Int64, _ reason: StopReason) {
        jobs.withLock { $0[id] }?.stop(reason)
    }

    /// Stops every job held.
    public func stopAll(_ reason: StopReason) {
        for control in jobs.withLock({ Array($0.values) }) { control.stop(reason) }
    }
}
