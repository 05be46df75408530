import Synchronization

/// What the services of one worker run share: the claim scheduler and its wake-ups, the jobs in
/// hand, the completion queue and the live streams.
final class WorkerState: Sendable {
    let scheduler: Mutex<ClaimScheduler>
    let wakeups: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation
    let registry: JobRegistry
    let completions: CompletionQueue
    let streams: LiveStreams
    private let stopping = Atomic<Bool>(false)
    private let registeredFlag = Atomic<Bool>(false)

    /// Whether the lease keeper has registered the worker (or given up trying once): claims wait
    /// for it, since a claim marks the worker `waiting` in its registry row.
    var registered: Bool {
        get { registeredFlag.load(ordering: .acquiring) }
        set { registeredFlag.store(newValue, ordering: .releasing) }
    }

    init(configuration: WorkerConfiguration, registry: JobRegistry? = nil) {
        streams = LiveStreams(throttle: configuration.streamThrottle)
        scheduler = Mutex(ClaimScheduler(concurrency: configuration.concurrency))
        (wakeups, wakeContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        completions = CompletionQueue(
            maxBatch: configuration.maxCompletionBatch, blockedRetry: BlockedRetry(giveUpAfter: configuration.lease))
        self.registry = registry ?? JobRegistry(abandonAfter: configuration.lease)
    }

    /// Tells the claim loop that work may be waiting (a NOTIFY, the fallback poll) or slots are free.
    func wake(_ trigger: ClaimScheduler.Trigger) {
        scheduler.withLock { $0.note(trigger) }
        wakeContinuation.yield()
    }

    /// Graceful shutdown has begun: claim no more.
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    func stopClaiming() {
        stopping.store(true, ordering: .relaxed)
        wakeContinuation.yield()
    }
}
