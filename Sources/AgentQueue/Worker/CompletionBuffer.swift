/// The batching decision for completions (pure): items wait while a flush is in flight and go
/// together in the next one, up to `maxBatch`. With nothing in flight an item is flushed at once,
/// so an idle worker pays no batching delay and a busy one commits many jobs per transaction.
public struct CompletionBuffer<Item>: Sendable where Item: Sendable {
    public let maxBatch: Int
    public private(set) var pending: [Item] = []
    public private(set) var flushing = false

    public init(maxBatch: Int) {
        precondition(maxBatch > 0)
        self.maxBatch = maxBatch
    }

    /// Adds an item; returns true when the flusher should be woken (nothing is in flight).
    public mutating func append(_ item: Item) -> Bool {
        pending.append(item)
        return !flushing
    }

    /// The next batch to flush, or nil when a flush is in flight or nothing waits.
    public mutating func takeBatch() -> [Item]? {
        guard !flushing, !pending.isEmpty else { return nil }
        let batch = Array(pending.prefix(maxBatch))
        pending.removeFirst(batch.count)
        flushing = true
        return batch
    }

    /// The flush in flight ended; returns true when more items wait (flush again at once).
    public mutating func flushEnded() -> Bool {
        flushing = false
        return !pending.isEmpty
    }
}
