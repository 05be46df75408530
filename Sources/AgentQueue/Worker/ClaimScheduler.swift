/// When to claim and how many: pure decisions of the worker's claim loop (no IO).
///
/// - A claim asks for the free capacity (`concurrency - inHand`), so one statement fills every slot.
/// - A wake-up (NOTIFY, poll, reconnect) claims when a slot is free. Freed slots claim when the last
///   claim came back full (more work may be queued), or when a finished job went back to the queue
///   (a retry, a release). While the worker waits, a job its finish unblocks (the next of a thread)
///   wakes it by NOTIFY (`agentq.unblock_next`), as an enqueue does; so an idle worker does not spend
///   a claim that finds nothing after every turn. Slots are freed per completion flush, so that is
///   at most one claim per flush, not per job.
/// - A claim that came back short marks the worker `waiting` in the database; the first such claim is
///   followed by one more claim at once, which catches a job enqueued before the flag was visible.
public struct ClaimScheduler: Sendable, Hashable {
    public enum Trigger: Sendable {
        /// A NOTIFY, the fallback poll, or a reconnect.
        case wake
        /// Jobs finished (a completion flush frees all its slots at once, so one claim refills them);
        /// `requeued` when one of them went back to the queue.
        case slotsFreed(Int, requeued: Bool)
    }

    public let concurrency: Int
    public private(set) var inHand = 0
    public private(set) var waiting = false
    private var claimAgain = true

    public init(concurrency: Int) {
        precondition(concurrency > 0, "concurrency must be positive")
        self.concurrency = concurrency
    }

    public var freeSlots: Int { concurrency - inHand }

    /// Records a trigger.
    public mutating func note(_ trigger: Trigger) {
        switch trigger {
        case .wake: claimAgain = true
        case .slotsFreed(let n, let requeued):
            inHand -= n
            precondition(inHand >= 0, "more slots freed than claimed")
            if !waiting || requeued { claimAgain = true }
        }
    }

    /// How many jobs to claim now; 0 means wait for the next trigger.
    public mutating func nextClaimSize() -> Int {
        guard claimAgain, freeSlots > 0 else { return 0 }
        claimAgain = false
        return freeSlots
    }

    /// Records what a claim of `asked` jobs returned.
    public mutating func claimed(_ got: Int, asked: Int) {
        inHand += got
        if got < asked {
            if !waiting { claimAgain = true }  // the once-more claim that closes the race with enqueuers
            waiting = true
        } else {
            waiting = false
        }
    }
}
