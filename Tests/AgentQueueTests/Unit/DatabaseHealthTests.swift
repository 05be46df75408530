import AgentQueue
import Testing

/// The worker's reachability decisions (`DatabaseHealth`) and the registry's letting go of jobs that
/// do not stop: pure, on a manual clock.
@Suite struct DatabaseHealthTests {
    let start = ContinuousClock.now

    @Test func aFailureMakesItUnreachableUntilTheNextSuccess() {
        var health = DatabaseHealth()
        #expect(health.isReachable && health.nextAction(at: start) == .none)
        health.failed(at: start)
        #expect(!health.isReachable)
        #expect(health.nextAction(at: start + .milliseconds(500)) == .none)
        #expect(health.nextAction(at: start + .seconds(1)) == .probeDirect)
        health.succeeded()
        #expect(health.isReachable && health.nextAction(at: start + .seconds(5)) == .none)
    }

    @Test func thePoolIsReplacedOnlyWhenTheServerAnswersAndThePoolStillDoesNot() {
        var health = DatabaseHealth()
        health.failed(at: start)
        health.directProbe(succeeded: false, at: start + .seconds(1))
        #expect(health.nextAction(at: start + .seconds(3)) == .probeDirect, "the server is down too: nothing to replace")
        health.directProbe(succeeded: true, at: start + .seconds(3))
        #expect(health.nextAction(at: start + .milliseconds(3500)) == .probeDirect, "the pool gets a second to reconnect")
        #expect(health.nextAction(at: start + .seconds(4)) == .replacePool)
        health.replaced(at: start + .seconds(4))
        health.directProbe(succeeded: true, at: start + .seconds(5))
        #expect(health.nextAction(at: start + .seconds(7)) == .probeDirect, "at most one replacement per gap")
        #expect(health.nextAction(at: start + .seconds(9)) == .replacePool)
        #expect(health.replacements == 1)
    }

    @Test func onlyFailuresToReachTheServerCount() {
        #expect(DatabaseHealth.isConnectionFailure(AgentQueueError(.databaseUnavailable, "no answer")))
        #expect(!DatabaseHealth.isConnectionFailure(AgentQueueError(.invalidInput, "bad")))
        #expect(!DatabaseHealth.isConnectionFailure(CancellationError()))
        struct SocketClosed: Error {}
        #expect(DatabaseHealth.isConnectionFailure(SocketClosed()), "the pool's own errors and IO errors count")
    }

    @Test func aStoppedJobThatDoesNotEndIsLeftOutOfHeartbeatsAfterALease() {
        let clock = JobRegistryTests.ManualClock()
        let registry = JobRegistry(abandonAfter: .seconds(30), now: { clock.now })
        let stuck = registry.add(1, attempt: 1)
        _ = registry.add(2, attempt: 1)
        registry.stop(1, .cancelRequested)
        #expect(stuck.reason == .cancelRequested)
        clock.advance(by: .seconds(29))
        #expect(Set(registry.held.map(\.id)) == [1, 2] && registry.abandoned.isEmpty)
        clock.advance(by: .seconds(1))
        #expect(registry.held.map(\.id) == [2] && registry.abandoned == [1], "its lease runs out; the take-back counts it")
        registry.remove(1, attempt: 1)
        #expect(registry.abandoned.isEmpty && registry.count == 1)
    }
}
