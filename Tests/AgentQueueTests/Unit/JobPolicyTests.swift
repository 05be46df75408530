import Foundation
import Synchronization
import Testing

@testable import AgentQueue

/// The pure decisions of the job path: outcomes, call repeats, embed splits, settings precedence,
/// the registry's budgets and the heartbeat's answers.
@Suite struct OutcomePolicyTests {
    static let now = Date(timeIntervalSince1970: 1_000_000)
    let policy = OutcomePolicy(backoff: Backoff(base: .seconds(4), cap: .seconds(60)), now: { OutcomePolicyTests.now })

    static func job(attempt: Int = 2) -> ClaimedJob {
        ClaimedJob(
            id: 7, kind: .generate, queue: "default", attempt: attempt, maxAttempts: 5, threadID: nil, userID: nil,
            agentName: "default", promptMessageID: nil, options: .object([:]))
    }

    @Test func aRetryWaitsForRetryAfterElseTheBackoffOfItsAttempt() {
        let asked = policy.retry(Self.job(), error: "busy", after: .seconds(3))
        #expect(asked.outcome == .retry && asked.error == "busy" && asked.retryAt == Self.now.addingTimeInterval(3))
        // Attempt 2 of a 4 s base: 8 s, times a jitter in [0.5, 1.5).
        let backedOff = policy.retry(Self.job(), error: "busy").retryAt!.timeIntervalSince(Self.now)
        #expect(backedOff >= 4 && backedOff <= 12)
    }

    @Test func stopsEndAsTheirReasonSays() {
        let job = Self.job()
        #expect(policy.stopped(job, .cancelRequested).outcome == .cancelled)
        #expect(policy.stopped(job, .shutdown).outcome == .released)
        let lost = policy.stopped(job, .leaseLost)
        #expect(lost.outcome == .failed && lost.error == "lease lost")
        let late = policy.stopped(job, .timeout(.milliseconds(300)))
        #expect(late.outcome == .retry && late.error == "job timed out after 0.3 seconds" && late.retryAt != nil)
    }

    @Test func errorsMapToOneOutcomeEach() {
        let job = Self.job()
        #expect(policy.outcome(of: GenerationError(.permanent, "bad key"), job: job, stopReason: nil).outcome == .failed)
        let transient = policy.outcome(of: GenerationError(.transient, "429", retryAfter: .seconds(2)), job: job, stopReason: nil)
        #expect(transient.outcome == .retry && transient.retryAt == Self.now.addingTimeInterval(2))
        #expect(policy.outcome(of: CancellationError(), job: job, stopReason: nil).outcome == .retry)
        // A stop wins over the error it caused.
        #expect(policy.outcome(of: CancellationError(), job: job, stopReason: .cancelRequested).outcome == .cancelled)
    }
}

@Suite struct CallRetryPolicyTests {
    let policy = CallRetryPolicy(base: .milliseconds(500), longestWait: .seconds(20))

    @Test func repeatsRetryableFaultsWithinMaxRetries() {
        let rateLimited = GenerationError(.transient, "429", retryableCall: true)
        #expect(policy.wait(after: rateLimited, repeats: 0, maxRetries: 3, jitter: 1) == .milliseconds(500))
        #expect(policy.wait(after: rateLimited, repeats: 2, maxRetries: 3, jitter: 1) == .seconds(2))
        #expect(policy.wait(after: rateLimited, repeats: 3, maxRetries: 3, jitter: 1) == nil)
        #expect(policy.wait(after: rateLimited, repeats: 0, maxRetries: 0, jitter: 1) == nil)
    }

    @Test func honoursRetryAfterUpToTheLongestWait() {
        let shortWait = GenerationError(.transient, "429", retryAfter: .seconds(7), retryableCall: true)
        #expect(policy.wait(after: shortWait, repeats: 0, maxRetries: 3, jitter: 1) == .seconds(7))
        let longWait = GenerationError(.transient, "429", retryAfter: .seconds(60), retryableCall: true)
        #expect(policy.wait(after: longWait, repeats: 0, maxRetries: 3, jitter: 1) == nil)
    }

    @Test func aStreamCutMidwayOrAPermanentFaultIsNotRepeated() {
        #expect(policy.wait(after: GenerationError(.transient, "cut"), repeats: 0, maxRetries: 3, jitter: 1) == nil)
        #expect(policy.wait(after: GenerationError(.permanent, "400"), repeats: 0, maxRetries: 3, jitter: 1) == nil)
    }
}

@Suite struct EmbedRefusalTests {
    @Test func aRefusedRequestIsSplitUntilTheRefusedMessageIsAlone() {
        #expect(EmbedRunner.RefusalStep.after(refusing: 5, saved: 0, refused: 0) == .split(at: 2))
        #expect(EmbedRunner.RefusalStep.after(refusing: 2, saved: 3, refused: 1) == .split(at: 1))
        #expect(EmbedRunner.RefusalStep.after(refusing: 1, saved: 0, refused: 0) == .refuseMessage)
        #expect(EmbedRunner.RefusalStep.after(refusing: 1, saved: 4, refused: 2) == .refuseMessage)
    }

    @Test func aSecondRefusalWithNothingEmbeddedFailsTheJob() {
        #expect(EmbedRunner.RefusalStep.after(refusing: 1, saved: 0, refused: 1) == .failJob)
    }
}

@Suite struct SettingsPrecedenceTests {
    let agent = AgentRecord(
        name: "a", model: "mock:agent-model", instructions: "agent says", tools: ["t_agent"], embeddingModel: nil,
        options: try! JSONValue.parse(#"{"timeout_ms": 9000, "max_steps": 2, "temperature": 0.1}"#))

    @Test func theAgentsOptionsApplyWhenNothingOverridesThem() throws {
        let s = try GenerationSettings(agent: agent, threadOptions: nil, jobOptions: .object([:]), defaultRecent: 40)
        #expect(s.provider == "mock" && s.model == "agent-model" && s.instructions == "agent says")
        #expect(s.timeout == .milliseconds(9000) && s.maxSteps == 2 && s.temperature == 0.1)
        #expect(s.toolNames == ["t_agent"] && s.recentMessages == 40 && s.saveMessages == .promptAndOutput && s.streams)
    }

    @Test func theThreadOverridesTheAgentAndTheJobOverridesBoth() throws {
        let thread = try JSONValue.parse(#"{"timeout_ms": 300, "model": "mock:thread-model", "tools": ["t_thread"]}"#)
        let fromThread = try GenerationSettings(agent: agent, threadOptions: thread, jobOptions: .object([:]))
        #expect(fromThread.timeout == .milliseconds(300) && fromThread.model == "thread-model" && fromThread.toolNames == ["t_thread"])
        #expect(fromThread.maxSteps == 2)
        let job = try JSONValue.parse(#"{"timeout_ms": 1500, "storage": {"save_messages": "none"}}"#)
        let fromJob = try GenerationSettings(agent: agent, threadOptions: thread, jobOptions: job)
        #expect(fromJob.timeout == .milliseconds(1500) && fromJob.model == "thread-model")
        #expect(fromJob.saveMessages == GenerationSettings.SaveMode.none && !fromJob.streams)
    }

    @Test func theDefaultBudgetIsTenMinutes() throws {
        let bare = AgentRecord(name: "b", model: "mock:m", instructions: nil, tools: [], embeddingModel: nil, options: .object([:]))
        #expect(try GenerationSettings(agent: bare, threadOptions: nil, jobOptions: .object([:])).timeout == .seconds(600))
    }

    @Test func anUnknownSaveModeIsNamed() {
        #expect(throws: GenerationError.self) {
            try GenerationSettings(
                agent: agent, threadOptions: nil, jobOptions: try JSONValue.parse(#"{"storage": {"save_messages": "some"}}"#))
        }
    }
}

@Suite struct JobRegistryTests {
    /// A clock the test moves by hand.
    final class ManualClock: Sendable {
        private let instant = Mutex(ContinuousClock.now)
        var now: ContinuousClock.Instant { instant.withLock { $0 } }
        func advance(by duration: Duration) { instant.withLock { $0 += duration } }
    }

    @Test func aJobPastItsBudgetIsStoppedWithItsBudget() {
        let clock = ManualClock()
        let registry = JobRegistry(now: { clock.now })
        let quick = registry.add(1, attempt: 1, budget: .milliseconds(300))
        let slow = registry.add(2, attempt: 1, budget: .seconds(600))
        registry.stopOverdue()
        #expect(quick.reason == nil)
        clock.advance(by: .milliseconds(300))
        registry.stopOverdue()
        #expect(quick.reason == .timeout(.milliseconds(300)) && slow.reason == nil)
    }

    @Test func aNewAttemptOfAHeldJobStopsTheOldOneAndOnlyItsOwnRemoveCounts() {
        let registry = JobRegistry()
        let first = registry.add(5, attempt: 1)
        let second = registry.add(5, attempt: 2)
        #expect(first.reason == .leaseLost && second.reason == nil)
        registry.remove(5, attempt: 1)
        #expect(registry.count == 1)
        registry.remove(5, attempt: 2)
        #expect(registry.count == 0)
    }

    /// The stream of a lost attempt told to stop, or a heartbeat's answer about it, must not stop the
    /// attempt this worker claimed since (before, a silent network cancelled re-claimed jobs).
    @Test func aStopForAnEarlierAttemptLeavesTheNewOneRunning() {
        let registry = JobRegistry()
        _ = registry.add(5, attempt: 1)
        let second = registry.add(5, attempt: 2)
        registry.stop(5, attempt: 1, .cancelRequested)
        registry.apply(heartbeat: [:], asked: [(id: 5, attempt: 1)])
        #expect(second.reason == nil)
        registry.stop(5, attempt: 2, .cancelRequested)
        #expect(second.reason == .cancelRequested)
    }

    @Test func heartbeatAnswersStopTakenBackAndCancelledJobs() {
        let asked: [(id: Int64, attempt: Int)] = [(1, 1), (2, 1), (3, 2)]
        let stops = JobRegistry.stops(heartbeat: [1: false, 2: true], asked: asked)
        #expect(stops.map(\.0) == [2, 3])
        #expect(stops.map(\.1) == [.cancelRequested, .leaseLost])
        let registry = JobRegistry()
        let controls = asked.map { registry.add($0.id, attempt: $0.attempt) }
        registry.apply(heartbeat: [1: false, 2: true], asked: asked)
        #expect(controls.map(\.reason) == [nil, .cancelRequested, .leaseLost])
    }
}

@Suite struct JSONNumberTests {
    /// A number past Int's range (a producer's `1e19`) reads as no integer, never a trap.
    @Test func integersAreReadExactlyOrNotAtAll() throws {
        #expect(JSONValue.number(42).intValue == 42)
        #expect(JSONValue.number(2.5).intValue == nil)
        #expect(JSONValue.number(1e19).intValue == nil)
        #expect(JSONValue.number(-1e300).intValue == nil)
        let agent = AgentRecord(name: "a", model: "mock:m", instructions: nil, tools: [], embeddingModel: nil, options: .object([:]))
        let huge = try JSONValue.parse(#"{"context": {"recent_messages": 1e19}, "max_steps": 1e300, "timeout_ms": 1e19}"#)
        let settings = try GenerationSettings(agent: agent, threadOptions: huge, jobOptions: .object([:]), defaultRecent: 100)
        #expect(settings.recentMessages == 100 && settings.maxSteps == 5 && settings.timeout == .seconds(600))
    }
}
