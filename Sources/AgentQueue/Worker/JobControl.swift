import Synchronization

/// The stop switch of one running job: `stop(_:)` records the first reason and wakes `waitForStop()`.
public final class JobControl: Sendable {
    private struct State {
        var reason: StopReason?
        var waiter: CheckedContinuation<Void, Never>?
        var waiterGone = false
    }

    private let state = Mutex(State())

    public init() {}

    public var reason: StopReason? { state.withLock { $0.reason } }

    /// Records the reason (the first one wins) and wakes the waiter.
    public func stop(_ reason: StopReason) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.reason == nil { s.reason = reason }
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Returns when the job is stopped, or when the calling task is cancelled.
    public func waitForStop() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.reason != nil || s.waiterGone { return true }
                    s.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.waiterGone = true
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}
