import Logging
import Synchronization

/// Finishes jobs in batches: job tasks `submit` their outcome and wait until it is committed; one
/// flusher task sends each batch through `agentq.finish_jobs` in one transaction.
public final class CompletionQueue: Sendable {
    /// A job whose outcome a flush wrote (or gave up on): its slot is free.
    public struct FlushedJob: Sendable {
        public let id: Int64
        public let attempt: Int
        /// Its outcome put it back in the queue (a retry, a release), so a claim may find it.
        public let requeued: Bool
    }

    struct Entry: Sendable {
        var item: FinishItem
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State: Sendable {
        var buffer: CompletionBuffer<Entry>
        var closed = false
        var closedAt: ContinuousClock.Instant?
    }

    private let state: Mutex<State>
    private let signal: AsyncStream<Void>
    private let signalContinuation: AsyncStream<Void>.Continuation

    /// `blockedRetry`: how an outcome whose thread or job row another transaction holds is retried,
    /// and when it is given up.
    public init(maxBatch: Int = 500, blockedRetry: BlockedRetry = BlockedRetry()) {
        state = Mutex(State(buffer: CompletionBuffer(maxBatch: maxBatch, retry: blockedRetry)))
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
        state.withLock {
            $0.closed = true
            $0.closedAt = $0.closedAt ?? .now
        }
        signalContinuation.yield()
    }

    /// The flusher loop; returns after `close()` once the buffer is empty, or when cancelled (what is
    /// still queued then is answered "not applied": the leases will bring those jobs back).
    /// A batch that fails for a reason retrying cannot fix (bad data: SQLSTATE classes 22, 23, 42, P0)
    /// is written item by item, and an item that still fails is recorded as a failed job without its
    /// messages. Other failures (the database restarting, a lock timeout) retry with a growing delay;
    /// after `close()` they give up after `giveUpAfterClose`. An item whose thread or job row another
    /// transaction holds (`finish_jobs` says blocked) waits alone, tried again with the buffer's
    /// `BlockedRetry`, while later items go on; given up (answered false, logged), its lease brings
    /// the job back. `onFlushed` gets the (job id, attempt) of the items answered before their
    /// submitters resume.
    public func runFlusher(
        store: JobStore, logger: Logger, giveUpAfterClose: Duration = .seconds(10),
        onFlushed: @Sendable ([FlushedJob]) -> Void = { _ in }
    ) async {
        var signals = signal.makeAsyncIterator()
        var due: ContinuousClock.Instant?
        while await next(&signals, orAt: due) {
            while let batch = state.withLock({ $0.buffer.takeBatch() }) {
                let result = await write(batch.map(\.item), store: store, logger: logger, giveUpAfterClose: giveUpAfterClose)
                let givenUp = state.withLock { $0.buffer.flushEnded(now: .now, blocked: { result.blocked.contains($0.item.jobID) }) }
                if !givenUp.isEmpty { logGivenUp(givenUp, logger: logger) }
                let done = batch.filter { !result.blocked.contains($0.item.jobID) }
                answer(done.map { ($0, result.applied[$0.item.jobID] ?? false) } + givenUp.map { ($0, false) }, onFlushed)
            }
            // After close(), blocked items wait at most giveUpAfterClose.
            let (finished, nextDue, dropped) = state.withLock { s in
                let late = s.closedAt.map { ContinuousClock.now - $0 >= giveUpAfterClose } ?? false
                let dropped = late ? s.buffer.dropBlocked() : []
                return (s.closed && s.buffer.isEmpty, s.buffer.nextDue.map { min($0, (s.closedAt ?? $0) + giveUpAfterClose) }, dropped)
            }
            if !dropped.isEmpty {
                logGivenUp(dropped, logger: logger)
                answer(dropped.map { ($0, false) }, onFlushed)
            }
            if finished { return }
            due = nextDue
        }
        // Cancelled: answer everyone still waiting so no job task hangs.
        let left = state.withLock { s -> [Entry] in
            var all: [Entry] = s.buffer.dropBlocked()
            while let batch = s.buffer.takeBatch() { all += batch; _ = s.buffer.flushEnded() }
            return all
        }
        for entry in left { entry.continuation.resume(returning: false) }
    }

    /// Waits for the next signal, or until `due` (a blocked item's retry, the give-up after close);
    /// false once the signals end (cancelled).
    private func next(_ signals: inout AsyncStream<Void>.Iterator, orAt due: ContinuousClock.Instant?) async -> Bool {
        guard let due else { return await signals.next() != nil }
        let wake = signalContinuation
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                if (try? await Task.sleep(until: due, clock: .continuous)) != nil { wake.yield() }
            }
            let signalled = await signals.next() != nil
            group.cancelAll()
            return signalled
        }
    }

    private func answer(_ answers: [(Entry, Bool)], _ onFlushed: @Sendable ([FlushedJob]) -> Void) {
        guard !answers.isEmpty else { return }
        onFlushed(
            answers.map { entry, _ in
                FlushedJob(id: entry.item.jobID, attempt: entry.item.attempt, requeued: [.retry, .released].contains(entry.item.outcome))
            })
        for (entry, applied) in answers { entry.continuation.resume(returning: applied) }
    }

    private func logGivenUp(_ entries: [Entry], logger: Logger) {
        logger.error(
            "giving up finishing jobs whose thread or job row another transaction holds; their leases will bring them back",
            metadata: ["jobs": "\(entries.map(\.item.jobID))", "blocked_for": "\(state.withLock { $0.buffer.retry.giveUpAfter })"])
    }

    private func write(_ items: [FinishItem], store: JobStore, logger: Logger, giveUpAfterClose: Duration) async -> FinishResult {
        var delay = Duration.milliseconds(50)
        var closedSince: ContinuousClock.Instant?
        while true {
            do {
                return try await store.finishBatch(items, logger: logger)
            } catch  where Self.isPermanent(error) {
                logger.error(
                    "finishing jobs failed on their data; writing them one by one",
                    metadata: ["jobs": "\(items.count)", "error": "\(describeDatabaseError(error))"])
                return await writeOneByOne(items, store: store, logger: logger)
            } catch {
                if Task.isCancelled { return FinishResult() }
                if state.withLock({ $0.closed }) {
                    let since = closedSince ?? .now
                    closedSince = since
                    if ContinuousClock.now - since > giveUpAfterClose {
                        logger.error(
                            "giving up finishing jobs at shutdown; their leases will bring them back",
                            metadata: ["jobs": "\(items.count)", "error": "\(describeDatabaseError(error))"])
                        return FinishResult()
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

    private func writeOneByOne(_ items: [FinishItem], store: JobStore, logger: Logger) async -> FinishResult {
        var results = FinishResult()
        for item in items {
            do {
                results.merge(try await store.finishBatch([item], logger: logger))
            } catch  where Self.isPermanent(error) {
                let reason = "could not save the job's outcome: \(describeDatabaseError(error))"
                let fallback = FinishItem(jobID: item.jobID, attempt: item.attempt, outcome: .failed, error: reason)
                let written = try? await store.finishBatch([fallback], logger: logger)
                results.applied[item.jobID] = written?.applied[item.jobID] ?? false
                if written?.blocked.contains(item.jobID) == true { results.blocked.insert(item.jobID) }
            } catch {
                results.applied[item.jobID] = false  // transient again: the lease brings the job back
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
