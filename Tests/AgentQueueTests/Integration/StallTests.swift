import AgentQueue
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// Stalls and edge limits: a producer transaction left open on a thread row holds up only that
/// thread's completion, and a parked job resumes however often it was parked. Oversized events are
/// in `StallTests+Events`.
@Suite struct StallTests {
    static func finished(_ job: ClaimedJob, _ text: String = "ok") -> FinishItem {
        FinishItem(
            jobID: job.id, attempt: job.attempt, outcome: .succeeded,
            result: JobResultPayload(text: text, messageIDs: [], usage: nil),
            messages: [NewMessage(text: text, model: "scripted", provider: "mock", usage: nil, finishReason: "stop", agentName: "default")])
    }

    /// A job on a thread of its own, claimed by `store`.
    static func claimedOnNewThread(_ client: PostgresClient, _ store: JobStore) async throws -> (job: ClaimedJob, thread: UUID) {
        let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
        let id: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'hi')")
        let claimed = try await store.claim(queues: ["default"], limit: 10, lease: .seconds(60), logger: TestDatabase.logger)
        guard let job = claimed.first(where: { $0.id == id }) else { throw TestFailure("job \(id) was not claimed") }
        return (job, thread)
    }

    static func status(_ client: PostgresClient, _ job: Int64) async throws -> String {
        try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)")
    }

    /// Runs `body` while another session holds `thread`'s row FOR UPDATE in an open transaction (a
    /// producer's left open), then commits that transaction.
    static func whileHolding<T: Sendable>(
        _ client: PostgresClient, thread: UUID, _ body: @Sendable () async throws -> T
    ) async throws -> T {
        try await client.withConnection { conn in
            _ = try await conn.query("BEGIN", logger: TestDatabase.logger).collect()
            _ = try await conn.query("SELECT * FROM agentq.threads WHERE id = \(thread) FOR UPDATE", logger: TestDatabase.logger).collect()
            do {
                let result = try await body()
                _ = try await conn.query("COMMIT", logger: TestDatabase.logger).collect()
                return result
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: TestDatabase.logger).collect()
                throw error
            }
        }
    }

    /// One thread's row held by an open producer transaction: the outcome of its job waits, and the
    /// outcomes submitted with it and after it commit at once (they used to wait behind it for ever,
    /// retried as one batch every `lock_timeout`). Once the transaction ends, the held one applies.
    @Test(.timeLimit(.minutes(2)))
    func aThreadRowHeldByAProducerHoldsUpOnlyThatThreadsCompletion() async throws {
        try await TestDatabase.with("stall_thread_row") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let (held, heldThread) = try await Self.claimedOnNewThread(client, store)
            let (free, _) = try await Self.claimedOnNewThread(client, store)
            let (later, _) = try await Self.claimedOnNewThread(client, store)
            let queue = CompletionQueue(maxBatch: 10)
            async let flusher: Void = queue.runFlusher(store: store, logger: TestDatabase.logger)
            let heldResult = try await Self.whileHolding(client, thread: heldThread) { () -> Task<Bool, Never> in
                let heldResult = Task { await queue.submit(Self.finished(held)) }
                let freeResult = Task { await queue.submit(Self.finished(free)) }
                // Generous windows for a loaded machine: the held row stays held throughout them.
                let freeDone =
                    (try? await eventually(timeout: .seconds(20), "the free job's outcome") {
                        try await Self.status(client, free.id) == "succeeded"
                    }) != nil
                #expect(freeDone, "the outcome beside the held one committed while the thread row was held")
                // A later batch does not wait behind the held item either.
                let laterResult = Task { await queue.submit(Self.finished(later)) }
                let laterDone =
                    (try? await eventually(timeout: .seconds(20), "the later job's outcome") {
                        try await Self.status(client, later.id) == "succeeded"
                    }) != nil
                #expect(laterDone, "a batch submitted after the held one committed while the thread row was held")
                #expect((try? await Self.status(client, held.id)) == "running")
                if freeDone { #expect(await freeResult.value) }
                if laterDone { #expect(await laterResult.value) }
                return heldResult
            }
            #expect(await heldResult.value, "the held outcome applies once the producer's transaction ends")
            #expect(try await Self.status(client, held.id) == "succeeded")
            queue.close()
            await flusher
        }
    }

    /// An outcome whose thread stays held past the bound is given up (submit answers false, logged):
    /// the job is left running for the lease to bring back, which happens once the thread is free.
    @Test(.timeLimit(.minutes(2)))
    func anOutcomeHeldUpPastItsBoundIsLeftToTheLease() async throws {
        try await TestDatabase.with("stall_give_up") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let (held, heldThread) = try await Self.claimedOnNewThread(client, store)
            let queue = CompletionQueue(
                maxBatch: 10,
                blockedRetry: BlockedRetry(firstDelay: .milliseconds(20), maxDelay: .milliseconds(200), giveUpAfter: .seconds(1)))
            async let flusher: Void = queue.runFlusher(store: store, logger: TestDatabase.logger)
            let answer = AnswerBox()
            try await Self.whileHolding(client, thread: heldThread) {
                let submitted = Task {
                    let applied = await queue.submit(Self.finished(held)); answer.withLock { $0 = applied }
                }
                let answered = (try? await eventually(timeout: .seconds(30), "the give-up") { answer.withLock { $0 != nil } }) != nil
                #expect(answered && answer.withLock { $0 } == false, "given up after its bound, not retried for ever")
                #expect((try? await Self.status(client, held.id)) == "running")
                if !answered { submitted.cancel() }
            }
            queue.close()
            await flusher
            // The lease path: once expired, the next claim takes the job back and runs it again.
            try await client.run("UPDATE agentq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = \(held.id)")
            let again = try await store.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
            #expect(again.map(\.id) == [held.id] && again.first?.attempt == 2)
        }
    }
}

// Resuming a parked job never runs into the 1..100 bound of max_attempts.
extension StallTests {
    /// Parks `job` (claimed by `store`) on an approval of call `call`, as the worker does.
    static func park(_ client: PostgresClient, _ store: JobStore, job: Int64, call: String) async throws {
        let claimed = try await store.claim(queues: ["default"], limit: 1, lease: .seconds(60), logger: TestDatabase.logger)
        guard let mine = claimed.first, mine.id == job else { throw TestFailure("job \(job) was not claimed: \(claimed.map(\.id))") }
        let step =
            #"{"message": {"id": "\#(UUID())", "content": [], "text": ""}, "calls": [{"tool_call_id": "\#(call)", "#
            + #""tool_name": "approve_order", "kind": "sql", "args": {}, "status": "awaiting_approval"}]}"#
        try await client.run("SELECT agentq.begin_step('w', \(job), \(mine.attempt)::int, \(step)::jsonb)")
        let parked = FinishItem(
            jobID: job, attempt: mine.attempt, outcome: .requiresAction,
            result: JobResultPayload(text: nil, messageIDs: [], usage: nil, pendingToolCalls: .array([])))
        #expect(try await store.finish([parked], logger: TestDatabase.logger)[job] == true)
        #expect(try await Self.status(client, job) == "requires_action")
    }

    /// A producer answers: the job goes back to the queue. `approve` false denies the call.
    static func answer(_ producer: PostgresClient, job: Int64, call: String, approve: Bool) async throws {
        try await producer.run("SELECT agentq.approve_tool_call(\(job), \(call), \(approve))")
    }

    static func resumeScene(
        _ name: String, maxAttempts: Int,
        _ body: @Sendable @escaping (PostgresClient, PostgresClient, JobStore, Int64) async throws -> Void
    ) async throws {
        try await TestDatabase.with(name) { owner, url in
            try await RolesTests.loginRole("agentq_test_producer", in: "agentq_producer", owner)
            let thread: UUID = try await owner.scalar("SELECT agentq.create_thread('alice')")
            let job: Int64 = try await owner.scalar(
                "SELECT agentq.generate(\(thread), 'order', options => jsonb_build_object('max_attempts', \(maxAttempts)))")
            try await RolesTests.session(RolesTests.url(url, user: "agentq_test_producer"), user: "alice") { alice in
                try await body(owner, alice, JobStore(client: owner, workerID: "w"), job)
            }
        }
    }

    /// A job at the highest max_attempts parked for an approval resumes when approved (the check on
    /// max_attempts used to refuse the resume with 23514), and its attempts are as before the park.
    @Test func aJobAtMaxAttempts100ResumesAfterAnApproval() async throws {
        try await Self.resumeScene("stall_resume_100", maxAttempts: 100) { owner, alice, store, job in
            try await Self.park(owner, store, job: job, call: "c1")
            try await Self.answer(alice, job: job, call: "c1", approve: true)
            #expect(try await Self.status(owner, job) == "queued")
            let (attempt, most): (Int, Int) = try await owner.rows(
                "SELECT attempt, max_attempts FROM agentq.jobs WHERE id = \(job)", as: (Int, Int).self
            ).first!
            #expect(attempt == 1 && most == 100)
            let again = try await store.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
            #expect(again.first?.attempt == 2, "a resumed attempt is numbered after the parked one")
        }
    }

    /// Parked and resumed 120 times (more than max_attempts can ever count), the job still resumes,
    /// and its attempts stay where they were: the parks used none of them.
    @Test(.timeLimit(.minutes(3)))
    func aJobResumed120TimesStillResumes() async throws {
        try await Self.resumeScene("stall_resume_120", maxAttempts: 5) { owner, alice, store, job in
            for round in 1...120 {
                try await Self.park(owner, store, job: job, call: "c\(round)")
                try await Self.answer(alice, job: job, call: "c\(round)", approve: round % 2 == 0)
                let now = try await Self.status(owner, job)
                #expect(now == "queued", "resume \(round)")
                if now != "queued" { return }
            }
            let (attempt, most): (Int, Int) = try await owner.rows(
                "SELECT attempt, max_attempts FROM agentq.jobs WHERE id = \(job)", as: (Int, Int).self
            ).first!
            #expect(attempt == 1 && most == 6, "attempt \(attempt), max_attempts \(most)")
        }
    }
}

/// A submitter's answer, shared with the test task.
private final class AnswerBox: Sendable {
    private let value = Mutex<Bool?>(nil)
    func withLock<R: Sendable>(_ body: (inout Bool?) -> R) -> R { value.withLock { body(&$0) } }
}
