import Logging
import Synchronization

/// Finishes jobs in batches: job tasks `submit` their outcome and wait until it is committed; one
/// flusher task sends each batch through `agentq.finish_jobs` in one transaction.
public final class CompletionQueue: Sendable {
    struct Entry: Sendable {
        var item: FinishItem
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State: Sendable {
        var buffer: CompletionBuffer<Entry>
        var closed = false
    }

    private let state: Mutex<State>
    private let signal: AsyncStream<Void>
    private let signalContinuation: AsyncStream<Void>.Continuation

    public init(maxBatch: Int = 500) {
        state = Mutex(State(buffer: CompletionBuffer(maxBatch: maxBatch)))
        (signal, signalContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues an outcome and returns once it was committed: true when it applied (the worker still
    /// held the job), false when it was fenced out or could not be written.
    public func submit(_ item: FinishItem) async -> Bool {
        await withCheckedContinuation { continuation in
            let wake = state.withLock { $0.buffer.append(Entry(item: item, continuation: continuation)) }
            if wake { signalContinuation.yield() }
        }
    }

    /// Ends the flusher once everything queued is written.
    public func close() {
        state.withLock { $0.closed = true }
        signalContinuation.yield()
    }

    /// The flusher loop; returns after `close()` once the buffer is empty. A failed flush is retried
    /// with a growing delay (the database may be restarting); fencing makes late writes harmless.
    /// `onFlushed` gets the job ids of each written batch before their submitters resume.
    public func runFlusher(store: JobStore, logger: Logger, onFlushed: @Sendable ([Int64]) -> Void = { _ in }) async {
        var retryDelay = Duration.milliseconds(50)
        for await _ in signal {
            while let batch = state.withLock({ $0.buffer.takeBatch() }) {
                var results: [Int64: Bool]?
                while results == nil {
                    do {
                        let started = ContinuousClock.now
                        results = try await store.finish(batch.map(\.item), logger: logger)
                        logger.debug("finished jobs", metadata: ["jobs": "\(batch.count)",
                                                                 "ms": "\((ContinuousClock.now - started).seconds * 1000)"])
                        retryDelay = .milliseconds(50)
                    } catch {
                        logger.error("finishing jobs failed; retrying",
                                     metadata: ["jobs": "\(batch.count)", "error": "\(describeDatabaseError(error))"])
                        if Task.isCancelled { results = [:]; break }
                        try? await Task.sleep(for: retryDelay)
                        retryDelay = min(retryDelay * 2, .seconds(5))
                    }
                }
                onFlushed(batch.map(\.item.jobID))
                for entry in batch { entry.continuation.resume(returning: results?[entry.item.jobID] ?? false) }
                _ = state.withLock { $0.buffer.flushEnded() }
            }
            if state.withLock({ $0.closed && $0.buffer.pending.isEmpty }) { return }
        }
    }
}
