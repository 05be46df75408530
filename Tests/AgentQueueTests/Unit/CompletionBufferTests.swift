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
}
