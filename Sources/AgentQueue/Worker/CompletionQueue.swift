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

    /// The flusher loop; returns after `close()` once the buffer is empty, or when cancelled (what is
    /// still queued then is answered "not applied": the leases will bring those jobs back).
    /// A batch that fails for a reason retrying cannot fix (bad data: SQLSTATE classes 22, 23, 42, P0)
    /// is written item by item, and an item that still fails is recorded as a failed job without its
    /// messages. Other failures (the database restarting, a lock timeout) retry with a growing delay;
    /// after `close()` they give up after `giveUpAfterClose`. `onFlushed` gets the (job id, attempt)
    /// of each batch before its submitters resume.
    public func runFlusher(
        store: JobStore, logger: Logger, giveUpAfterClose: Duration = .seconds(10),
        onFlushed: @Sendable ([(id: Int64, attempt: Int)]) -> Void = { _ in }
    ) async {
        for await _ in signal {
            while let batch = state.withLock({ $0.buffer.takeBatch() }) {
                let results = await write(batch.map(\.item), store: store, logger: logger, giveUpAfterClose: giveUpAfterClose)
                onFlushed(batch.map { ($0.item.jobID, $0.item.attempt) })
                for entry in batch { entry.continuation.resume(returning: results[entry.item.jobID] ?? false) }
                _ = state.withLock { $0.buffer.flushEnded() }
            }
            if state.withLock({ $0.closed && $0.buffer.pending.isEmpty }) { return }
        }
        // Cancelled: answer everyone still waiting so no job task hangs.
        let left = state.withLock { s -> [Entry] in
            var all: [Entry] = []
            while let batch = s.buffer.takeBatch() { all += batch; _ = s.buffer.flushEnded() }
            return all
        }
        for entry in left { entry.continuation.resume(returning: false) }
    }

    private func write(_ items: [FinishItem], store: JobStore, logger: Logger, giveUpAfterClose: Duration) async -> [Int64: Bool] {
        var delay = Duration.milliseconds(50)
        var closedSince: ContinuousClock.Instant?
        while true {
            do {
                return try await store.finish(items, logger: logger)
            } catch  where Self.isPermanent(error) {
                logger.error(
                    "finishing jobs failed on their data; writing them one by one",
                    metadata: ["jobs": "\(items.count)", "error": "\(describeDatabaseError(error))"])
                return await writeOneByOne(items, store: store, logger: logger)
            } catch {
                if Task.isCancelled { return [:] }
                if state.withLock({ $0.closed }) {
                    let since = closedSince ?? .now
                    closedSince = since
                    if ContinuousClock.now - since > giveUpAfterClose {
                        logger.error(
                            "giving up finishing jobs at shutdown; their leases will bring them back",
                            metadata: ["jobs": "\(items.count)", "error": "\(describeDatabaseError(error))"])
                        return [:]
                    }
                }
                logger.warning(
                    "finishing jobs failed; retrying",
                    metadata: ["jobs": "\(items.count)", "error": "\(describeDatabaseError(error))", "retry_in": "\(delay)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    private func writeOneByOne(_ items: [FinishItem], store: JobStore, logger: Logger) async -> [Int64: Bool] {
        var results: [Int64: Bool] = [:]
        for item in items {
            do {
                results.merge(try await store.finish([item], logger: logger)) { $1 }
            } catch  where Self.isPermanent(error) {
                let reason = "could not save the job's outcome: \(describeDatabaseError(error))"
                let fallback = FinishItem(jobID: item.jobID, attempt: item.attempt, outcome: .failed, error: reason)
                results[item.jobID] = (try? await store.finish([fallback], logger: logger))?[item.jobID] ?? false
            } catch {
                results[item.jobID] = false  // transient again: the lease brings the job back
            }
        }
        return results
    }

    /// Errors in the data itself, which the same statement would hit again.
    static func isPermanent(_ error: any Error) -> Bool {
        guard let state = sqlState(of: error) else { return false }
        return ["22", "23", "42", "P0"].contains(String(state.prefix(2)))
    }
}
