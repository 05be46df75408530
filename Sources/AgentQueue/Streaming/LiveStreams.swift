import Foundation
import Logging
import Synchronization

/// The live streams of one worker process: generations append text as it arrives, and one tick loop
/// (`run`) writes every stream's waiting text in one statement per tick (`agentq.write_deltas`).
/// Finishing a stream waits for a tick that holds it to land, so the last delta (written with the
/// final message by `finish_jobs`) always follows the ones before it without a gap.
public final class LiveStreams: Sendable {
    /// A stream a generation writes to.
    public struct Handle: Sendable, Hashable {
        public var streamID: UUID
        public var messageID: UUID
        public var jobID: Int64
        public var attempt: Int
    }

    private struct State: Sendable {
        var buffer: StreamDeltaBuffer<UUID>
        var handles: [UUID: Handle] = [:]
        var inFlight: Set<UUID> = []
        var landed: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(throttle: Duration = .milliseconds(100)) {
        state = Mutex(State(buffer: StreamDeltaBuffer(throttle: throttle)))
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func open(_ handle: Handle) {
        state.withLock {
            $0.buffer.open(handle.streamID)
            $0.handles[handle.streamID] = handle
        }
        WorkerMetrics.liveStreams.increment()
    }

    /// Appends text a model produced; wakes the tick loop when a write may be due.
    public func append(_ text: String, to stream: UUID) {
        let now = ContinuousClock.now
        // Wake when the first text starts waiting (the loop then sleeps out the throttle) or a
        // write is due now.
        let due = state.withLock { s -> Bool in
            let wasIdle = s.buffer.timeUntilDue(now: now) == nil
            s.buffer.append(text, to: stream)
            return wasIdle || s.buffer.isDue(now: now)
        }
        if due { wake.yield() }
    }

    /// Closes a stream once no tick holding it is in flight; returns its last delta, if text waits.
    public func finish(_ stream: UUID) async -> StreamDeltaBuffer<UUID>.Delta? {
        while true {
            let result: StreamDeltaBuffer<UUID>.Delta?? = state.withLock { s in
                guard !s.inFlight.contains(stream) else { return .none }
                s.handles[stream] = nil
                return .some(s.buffer.finish(stream))
            }
            if let delta = result {
                WorkerMetrics.liveStreams.decrement()
                return delta
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if !s.inFlight.contains(stream) { return true }
                    s.landed.append(c)
                    return false
                }
                if resumeNow { c.resume() }
            }
        }
    }

    /// The tick loop: writes waiting deltas when the throttle or a sentence end says so, until
    /// cancelled. `onStop` hears of jobs whose streams the database says to stop (cancel, lost hold).
    public func run(store: StreamStore, logger: Logger, onStop: @Sendable (_ job: Int64, _ attempt: Int) -> Void) async {
        var wakes = wakeups.makeAsyncIterator()
        while !Task.isCancelled {
            let wait = state.withLock { $0.buffer.timeUntilDue(now: .now) }
            switch wait {
            case nil:
                guard await wakes.next() != nil else { return }
            case let d? where d > .zero:
                try? await Task.sleep(for: d)
            default:
                await tick(store: store, logger: logger, onStop: onStop)
            }
        }
    }

    private func tick(store: StreamStore, logger: Logger, onStop: @Sendable (_ job: Int64, _ attempt: Int) -> Void) async {
        let (deltas, handles) = state.withLock { s in
            let deltas = s.buffer.takeTick(now: .now)
            s.inFlight = Set(deltas.map(\.stream))
            return (deltas, s.handles)
        }
        guard !deltas.isEmpty else { return }
        let rows = deltas.compactMap { d in
            handles[d.stream].map { StreamStore.Delta(streamID: d.stream, attempt: $0.attempt, seq: d.seq, text: d.text) }
        }
        var stopped: [(job: Int64, attempt: Int)] = []
        do {
            let result = try await store.write(rows, logger: logger)
            for (id, outcome) in result where outcome.stop {
                guard let handle = handles[id] else { continue }
                let job = handle.jobID
                stopped.append((job, handle.attempt))
                logger.info(
                    "the database stopped a stream (cancel requested, ended, no longer this attempt's, or out of sequence)",
                    metadata: ["job_id": "\(job)", "stream_id": "\(id)", "written": "\(outcome.written)"])
            }
        } catch {
            logger.warning(
                "writing stream deltas failed; they go out with the next tick",
                metadata: ["streams": "\(deltas.count)", "error": "\(describeDatabaseError(error))"])
            state.withLock { $0.buffer.putBack(deltas) }
            try? await Task.sleep(for: .milliseconds(200))
        }
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.inFlight = []
            defer { s.landed = [] }
            return s.landed
        }
        for w in waiters { w.resume() }
        for (job, attempt) in stopped { onStop(job, attempt) }
    }
}
