import AgentQueue
import Testing

@Suite struct ClaimSchedulerTests {
    @Test func firstClaimAsksForEverySlot() {
        var s = ClaimScheduler(concurrency: 8)
        #expect(s.nextClaimSize() == 8)
        #expect(s.nextClaimSize() == 0)  // nothing new happened
    }

    @Test func aShortClaimMarksWaitingAndClaimsOnceMore() {
        var s = ClaimScheduler(concurrency: 8)
        #expect(s.nextClaimSize() == 8)
        s.claimed(3, asked: 8)
        #expect(s.waiting)
        #expect(s.nextClaimSize() == 5)  // the once-more claim that closes the race with enqueuers
        s.claimed(0, asked: 5)
        #expect(s.nextClaimSize() == 0)  // now it sleeps until a wake-up
        s.note(.wake)
        #expect(s.nextClaimSize() == 5)
    }

    @Test func freedSlotsClaimOnlyAfterAFullClaimOrARequeue() {
        var s = ClaimScheduler(concurrency: 2)
        _ = s.nextClaimSize()
        s.claimed(2, asked: 2)  // full: more work may be queued
        s.note(.slotsFreed(1, requeued: false))
        #expect(s.nextClaimSize() == 1)
        s.claimed(0, asked: 1)  // short: waiting, one more claim due
        #expect(s.nextClaimSize() == 1)
        s.claimed(0, asked: 1)
        #expect(s.nextClaimSize() == 0)  // asleep until something happens
        s.note(.slotsFreed(1, requeued: false))  // a job the finish unblocked wakes the worker by NOTIFY instead
        #expect(s.nextClaimSize() == 0)
        #expect(s.inHand == 0)
        s.note(.wake)
        #expect(s.nextClaimSize() == 2)
        s.claimed(1, asked: 2)  // short again, already waiting: no once-more claim
        #expect(s.nextClaimSize() == 0)
        s.note(.slotsFreed(1, requeued: true))  // a retry went back to the queue: look for it
        #expect(s.nextClaimSize() == 2)
    }

    @Test func aFlushFreesManySlotsForOneClaim() {
        var s = ClaimScheduler(concurrency: 100)
        _ = s.nextClaimSize()
        s.claimed(100, asked: 100)
        s.note(.slotsFreed(60, requeued: false))
        #expect(s.nextClaimSize() == 60)
    }

    @Test func noClaimWithoutFreeSlots() {
        var s = ClaimScheduler(concurrency: 1)
        _ = s.nextClaimSize()
        s.claimed(1, asked: 1)
        s.note(.wake)
        #expect(s.nextClaimSize() == 0)
        s.note(.slotsFreed(1, requeued: false))
        #expect(s.nextClaimSize() == 1)
    }
}
