/// The batching decision for completions (pure): items wait while a flush is in flight and go
/// together in the next one, up to `maxBatch`. With nothing in flight an item is flushed at once,
/// so an idle worker pays no batching delay and a busy one commits many jobs per transaction.
/// An item a flush could not write because another transaction held its rows is set aside and
/// tried again after a growing delay (`BlockedRetry`), without holding up the others.
public struct CompletionBuffer<Item>: Sendable where Item: Sendable {
    public let maxBatch: Int
    public let retry: BlockedRetry
    public private(set) var pending: [Item] = []
    public private(set) var flushing = false
    /// Items set aside, each waiting for its next try.
    public private(set) var blocked: [Blocked] = []
    /// The batch in flight, with the record of the items that were blocked before.
    private var inFlight: [(item: Item, record: Blocked?)] = []

    /// An item whose rows another transaction held: since when, how many tries, when it is due.
    public struct Blocked: Sendable {
        public var item: Item
        public var since: ContinuousClock.Instant
        public var tries: Int
        public var due: ContinuousClock.Instant
    }

    public init(maxBatch: Int, retry: BlockedRetry = BlockedRetry()) {
        precondition(maxBatch > 0)
        self.maxBatch = maxBatch
        self.retry = retry
    }

    /// Nothing waits, blocked or not (a flush may still be in flight).
    public var isEmpty: Bool { pending.isEmpty && blocked.isEmpty }

    /// When the first blocked item is due (the flusher wakes then), nil when none is blocked.
    public var nextDue: ContinuousClock.Instant? { blocked.map(\.due).min() }

    /// Adds an item; returns true when the flusher should be woken (nothing is in flight).
    public mutating func append(_ item: Item) -> Bool {
        pending.append(item)
        return !flushing
    }

    /// The next batch to flush: the blocked items due at `now`, then the waiting ones, up to
    /// `maxBatch`; nil when a flush is in flight or nothing is ready.
    public mutating func takeBatch(now: ContinuousClock.Instant = .now) -> [Item]? {
        guard !flushing else { return nil }
        var due: [Blocked] = []
        var later: [Blocked] = []
        for record in blocked {
            if record.due <= now && due.count < maxBatch { due.append(record) } else { later.append(record) }
        }
        let fresh = Array(pending.prefix(maxBatch - due.count))
        guard !due.isEmpty || !fresh.isEmpty else { return nil }
        blocked = later
        pending.removeFirst(fresh.count)
        inFlight = due.map { ($0.item, $0) } + fresh.map { ($0, nil) }
        flushing = true
        return inFlight.map(\.item)
    }

    /// The flush in flight ended with every item written; returns true when more items are ready
    /// (flush again at once).
    public mutating func flushEnded() -> Bool {
        _ = flushEnded(now: .now, blocked: { _ in false })
        return !pending.isEmpty || blocked.contains { $0.due <= .now }
    }

    /// The flush in flight ended; the items `isBlocked` names were not written (another transaction
    /// held their rows). Each is set aside for its next try, or given up once it has been blocked for
    /// `retry.giveUpAfter`. Returns the items given up.
    public mutating func flushEnded(now: ContinuousClock.Instant, blocked isBlocked: (Item) -> Bool) -> [Item] {
        var givenUp: [Item] = []
        for (item, record) in inFlight where isBlocked(item) {
            let since = record?.since ?? now
            let tries = (record?.tries ?? 0) + 1
            if let due = retry.nextTry(since: since, tries: tries, now: now) {
                blocked.append(Blocked(item: item, since: since, tries: tries, due: due))
            } else {
                givenUp.append(item)
            }
        }
        inFlight = []
        flushing = false
        return givenUp
    }

    /// Takes every blocked item out (given up: at shutdown).
    public mutating func dropBlocked() -> [Item] {
        defer { blocked = [] }
        return blocked.map(\.item)
    }
}

/// How an item blocked by another transaction's row lock is retried (pure): the delay doubles from
/// `firstDelay` up to `maxDelay`, and after `giveUpAfter` blocked the item is given up (left to the
/// job's lease, README "How the queue works").
public struct BlockedRetry: Sendable, Hashable {
    public var firstDelay: Duration
    public var maxDelay: Duration
    public var giveUpAfter: Duration

    /// By default an item is given up after as long as the default lease.
    public init(firstDelay: Duration = .milliseconds(50), maxDelay: Duration = .seconds(2), giveUpAfter: Duration = .seconds(30)) {
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
        self.giveUpAfter = giveUpAfter
    }

    /// The wait after the `tries`th blocked try.
    public func delay(afterTries tries: Int) -> Duration {
        var delay = firstDelay
        for _ in 1..<max(tries, 1) where delay < maxDelay { delay = delay * 2 }
        return min(delay, maxDelay)
    }

    /// When to try an item blocked since `since` again after its `tries`th blocked try at `now`: never
    /// past its bound (the last try is at the bound), nil once the bound is reached (give it up).
    public func nextTry(since: ContinuousClock.Instant, tries: Int, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        let bound = since + giveUpAfter
        guard now < bound else { return nil }
        return min(now + delay(afterTries: tries), bound)
    }
}
