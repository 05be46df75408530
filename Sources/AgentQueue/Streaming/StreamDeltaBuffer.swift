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
    }

    public let throttle: Duration
    private var streams: [StreamID: Stream] = [:]
    private var lastTick: ContinuousClock.Instant?
    /// Streams with text waiting, and those of them whose text reached a sentence end.
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
        if s.pending.isEmpty { waiting += 1 }
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

    /// Puts back deltas whose write failed, so the next tick writes them again with the same `seq`
    /// (ahead of any text that arrived since). Streams closed meanwhile are skipped.
    public mutating func putBack(_ deltas: [Delta]) {
        for d in deltas {
            guard var s = streams[d.stream] else { continue }
            if s.pending.isEmpty { waiting += 1 }
            s.pending = d.text + s.pending
            s.nextSeq = d.seq
            streams[d.stream] = s
        }
    }

    /// Takes one delta per stream with text waiting (for the one statement of this tick).
    public mutating func takeTick(now: ContinuousClock.Instant) -> [Delta] {
        lastTick = now
        guard waiting > 0 else { return [] }
        var deltas: [Delta] = []
        deltas.reserveCapacity(waiting)
        for (id, s) in streams where !s.pending.isEmpty {
            deltas.append(Delta(stream: id, seq: s.nextSeq, text: s.pending))
            streams[id] = Stream(pending: "", nextSeq: s.nextSeq + 1, sentenceEnded: false)
        }
        waiting = 0
        sentenceEnds = 0
        return deltas
    }

    /// Closes a stream; returns its last delta, if text was waiting, to write with the final message.
    public mutating func finish(_ stream: StreamID) -> Delta? {
        guard let s = streams.removeValue(forKey: stream) else { return nil }
        forget(s)
        guard !s.pending.isEmpty else { return nil }
        return Delta(stream: stream, seq: s.nextSeq, text: s.pending)
    }

    private mutating func forget(_ s: Stream) {
        if !s.pending.isEmpty { waiting -= 1 }
        if s.sentenceEnded { sentenceEnds -= 1 }
    }

    /// The `seq` the stream's next delta will take (to check continuity against the database).
    public func nextSeq(of stream: StreamID) -> Int? { streams[stream]?.nextSeq }

    public var openStreams: Int { streams.count }
}
