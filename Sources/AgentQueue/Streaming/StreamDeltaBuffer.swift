/// The deltas of every live stream of one worker, waiting for the next write (pure; no IO, the clock
/// is passed in). One statement per tick writes all streams' deltas (README: Streaming), every
/// `throttle` (100 ms by default) or sooner when a stream's text reaches a sentence end.
///
/// Each stream's deltas get `seq` 0, 1, 2, ... without gaps, and the text of its deltas concatenates
/// to exactly the text appended. `finish(stream)` hands back what is left as the stream's last delta
/// so the final message and the last delta commit together (no delta can land after the finish).
/// Appending and the due check are O(1) (they run on every token of every stream); a tick is O(streams).
public struct StreamDeltaBuffer<StreamID: Hashable & Sendable>: Sendable {
    /// One delta to write.
    public struct Delta: Sendable, Hashable {
        public var stream: StreamID
        public var seq: Int
        public var text: String
    }

    private struct Stream: Sendable {
        var pending = ""
        var nextSeq = 0
        var sentenceEnded = false
        /// A delta whose write's outcome is unknown, to send again as it was.
        var unconfirmed: Delta?

        var hasWork: Bool { !pending.isEmpty || unconfirmed != nil }
    }

    public let throttle: Duration
    private var streams: [StreamID: Stream] = [:]
    private var lastTick: ContinuousClock.Instant?
    /// Streams with a delta waiting (text or a put-back delta), and those whose text reached a sentence end.
    private var waiting = 0
    private var sentenceEnds = 0

    public init(throttle: Duration = .milliseconds(100)) {
        self.throttle = throttle
    }

    /// Starts a stream; its first delta will have `seq` 0 (or `firstSeq`, when resuming).
    public mutating func open(_ stream: StreamID, firstSeq: Int = 0) {
        if let old = streams[stream] { forget(old) }
        streams[stream] = Stream(nextSeq: firstSeq)
    }

    /// Appends text a model produced.
    public mutating func append(_ text: String, to stream: StreamID) {
        guard !text.isEmpty, var s = streams[stream] else { return }
        if !s.hasWork { waiting += 1 }
        s.pending += text
        if !s.sentenceEnded {
            let lastVisible = text.unicodeScalars.last(where: { !$0.properties.isWhitespace })
            if text.contains("\n") || lastVisible.map({ ".!?。！？".unicodeScalars.contains($0) }) == true {
                s.sentenceEnded = true
                sentenceEnds += 1
            }
        }
        streams[stream] = s
    }

    /// Whether a write is due at `now`: the throttle elapsed with text waiting, or a sentence ended.
    public func isDue(now: ContinuousClock.Instant) -> Bool {
        guard waiting > 0 else { return false }
        if sentenceEnds > 0 { return true }
        guard let lastTick else { return true }
        return now - lastTick >= throttle
    }

    /// How long until a write is due: nil when no text waits, zero when one is due now.
    public func timeUntilDue(now: ContinuousClock.Instant) -> Duration? {
        guard waiting > 0 else { return nil }
        if isDue(now: now) { return .zero }
        return throttle - (now - (lastTick ?? now))
    }

    /// Puts back deltas whose write failed. The statement may have landed all the same (its answer
    /// was lost), so each is kept as it was and the next tick sends it again unchanged, same `seq`
    /// and text, which the database recognises as a duplicate if it did land; text that arrived
    /// since waits for the tick after. Streams closed meanwhile are skipped.
    public mutating func putBack(_ deltas: [Delta]) {
        for d in deltas {
            guard var s = streams[d.stream] else { continue }
            if !s.hasWork { waiting += 1 }
            s.unconfirmed = d
            streams[d.stream] = s
        }
    }

    /// Takes one delta per stream with text waiting (for the one statement of this tick): a put-back
    /// delta first, else the text waiting.
    public mutating func takeTick(now: ContinuousClock.Instant) -> [Delta] {
        lastTick = now
        guard waiting > 0 else { return [] }
        var deltas: [Delta] = []
        deltas.reserveCapacity(waiting)
        waiting = 0
        sentenceEnds = 0
        for (id, var s) in streams where s.hasWork {
            if let resend = s.unconfirmed {
                deltas.append(resend)
                s.unconfirmed = nil
                if !s.pending.isEmpty { waiting += 1 }
                if s.sentenceEnded { sentenceEnds += 1 }
            } else {
                deltas.append(Delta(stream: id, seq: s.nextSeq, text: s.pending))
                s = Stream(pending: "", nextSeq: s.nextSeq + 1, sentenceEnded: false)
            }
            streams[id] = s
        }
        return deltas
    }

    /// Closes a stream; returns its last delta, if text was waiting, to write with the final message.
    /// A put-back delta leads it under its own `seq`; the database writes only the part of it that
    /// did not land (`agentq.finish_last_deltas`).
    public mutating func finish(_ stream: StreamID) -> Delta? {
        guard let s = streams.removeValue(forKey: stream) else { return nil }
        forget(s)
        if let resend = s.unconfirmed { return Delta(stream: stream, seq: resend.seq, text: resend.text + s.pending) }
        guard !s.pending.isEmpty else { return nil }
        return Delta(stream: stream, seq: s.nextSeq, text: s.pending)
    }

    private mutating func forget(_ s: Stream) {
        if s.hasWork { waiting -= 1 }
        if s.sentenceEnded { sentenceEnds -= 1 }
    }

    /// The `seq` the stream's next delta will take (to check continuity against the database).
    public func nextSeq(of stream: StreamID) -> Int? { streams[stream]?.nextSeq }

    public var openStreams: Int { streams.count }
}
