import AgentQueue
import Testing

@Suite struct CompletionBufferTests {
    @Test func idleItemIsFlushedAtOnce() {
        var b = CompletionBuffer<Int>(maxBatch: 10)
        #expect(b.append(1) == true)
        #expect(b.takeBatch() == [1])
        let more = b.flushEnded()
        #expect(!more)
    }

    @Test func itemsWaitForTheFlushInFlightThenGoTogether() {
        var b = CompletionBuffer<Int>(maxBatch: 10)
        _ = b.append(0)
        #expect(b.takeBatch() == [0])
        #expect(b.append(1) == false)  // a flush is in flight: no extra wake-up
        #expect(b.append(2) == false)
        #expect(b.takeBatch() == nil)  // single flight
        let more = b.flushEnded()
        #expect(more)
        #expect(b.takeBatch() == [1, 2])
    }

    @Test func batchesAreCappedAtMaxBatch() {
        var b = CompletionBuffer<Int>(maxBatch: 3)
        for i in 0..<7 { _ = b.append(i) }
        #expect(b.takeBatch() == [0, 1, 2])
        var more = b.flushEnded()
        #expect(more)
        #expect(b.takeBatch() == [3, 4, 5])
        more = b.flushEnded()
        #expect(more)
        #expect(b.takeBatch() == [6])
        more = b.flushEnded()
        #expect(!more)
    }

    static let retry = BlockedRetry(firstDelay: .milliseconds(100), maxDelay: .milliseconds(400), giveUpAfter: .seconds(1))

    /// A blocked item waits alone: the items beside it and after it flush at once; it is tried again
    /// once its delay passes, the delay doubling up to its cap.
    @Test func aBlockedItemWaitsAloneAndIsTriedAgainWithAGrowingDelay() {
        let t0 = ContinuousClock.now
        var b = CompletionBuffer<Int>(maxBatch: 10, retry: Self.retry)
        _ = b.append(1)
        _ = b.append(2)
        #expect(b.takeBatch(now: t0) == [1, 2])
        #expect(b.flushEnded(now: t0, blocked: { $0 == 1 }).isEmpty)
        #expect(b.nextDue == t0 + .milliseconds(100) && !b.isEmpty)
        #expect(b.append(3) == true)  // nothing in flight: flushed at once, without item 1
        #expect(b.takeBatch(now: t0 + .milliseconds(10)) == [3])
        #expect(b.flushEnded(now: t0 + .milliseconds(20), blocked: { _ in false }).isEmpty)
        #expect(b.takeBatch(now: t0 + .milliseconds(50)) == nil)  // not due yet
        #expect(b.takeBatch(now: t0 + .milliseconds(100)) == [1])
        _ = b.flushEnded(now: t0 + .milliseconds(100), blocked: { _ in true })
        #expect(b.nextDue == t0 + .milliseconds(300))  // 200 ms after the second try
        #expect(b.takeBatch(now: t0 + .milliseconds(300)) == [1])
        _ = b.flushEnded(now: t0 + .milliseconds(300), blocked: { _ in true })
        #expect(b.nextDue == t0 + .milliseconds(700))  // capped at 400 ms
        // Written at last: nothing waits.
        #expect(b.takeBatch(now: t0 + .milliseconds(700)) == [1])
        #expect(b.flushEnded(now: t0 + .milliseconds(700), blocked: { _ in false }).isEmpty)
        #expect(b.isEmpty && b.nextDue == nil)
    }

    /// The last try is at the bound, not past it; blocked then, the item is given up.
    @Test func aBlockedItemIsGivenUpAtItsBound() {
        let t0 = ContinuousClock.now
        var b = CompletionBuffer<Int>(maxBatch: 10, retry: Self.retry)
        _ = b.append(7)
        var now = t0
        var tries = 0
        while let batch = b.takeBatch(now: now) {
            #expect(batch == [7])
            tries += 1
            let givenUp = b.flushEnded(now: now, blocked: { _ in true })
            if !givenUp.isEmpty {
                #expect(givenUp == [7] && now == t0 + .seconds(1))
                break
            }
            now = b.nextDue!
            #expect(now <= t0 + .seconds(1))
        }
        #expect(tries == 5)  // at 0, 100, 300, 700 ms and at the bound (1 s)
        #expect(b.isEmpty)
    }

    /// Blocked items due go first in the next batch, which still holds no more than maxBatch.
    @Test func dueBlockedItemsGoFirstWithinMaxBatch() {
        let t0 = ContinuousClock.now
        var b = CompletionBuffer<Int>(maxBatch: 3, retry: Self.retry)
        for i in 0..<3 { _ = b.append(i) }
        #expect(b.takeBatch(now: t0) == [0, 1, 2])
        _ = b.flushEnded(now: t0, blocked: { $0 < 2 })
        for i in 3..<6 { _ = b.append(i) }
        #expect(b.takeBatch(now: t0 + .milliseconds(100)) == [0, 1, 3])
        _ = b.flushEnded(now: t0 + .milliseconds(100), blocked: { _ in false })
        #expect(b.takeBatch(now: t0 + .milliseconds(100)) == [4, 5])
    }

    @Test func theRetryDelayDoublesUpToItsCap() {
        #expect((1...5).map { Self.retry.delay(afterTries: $0) } == [100, 200, 400, 400, 400].map { .milliseconds($0) })
        #expect(BlockedRetry().delay(afterTries: 1) == .milliseconds(50) && BlockedRetry().giveUpAfter == .seconds(30))
    }

    /// Dropped at shutdown: every blocked item comes out, nothing waits.
    @Test func blockedItemsCanBeDropped() {
        let t0 = ContinuousClock.now
        var b = CompletionBuffer<Int>(maxBatch: 10, retry: Self.retry)
        _ = b.append(1)
        _ = b.takeBatch(now: t0)
        _ = b.flushEnded(now: t0, blocked: { _ in true })
        #expect(b.dropBlocked() == [1] && b.isEmpty)
    }
}
