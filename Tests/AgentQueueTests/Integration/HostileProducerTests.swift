import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Tenant isolation against a hostile producer: alice and bob are users of one application, whose
/// login role is in `agentq_producer`; alice uses every privilege that role has to reach bob's data.
/// The other suites of this file's family: `+Tools` (tool calls), `+Data` (messages, search,
/// idempotency, the registry, limits), `+Functions` (who may execute what).
@Suite struct HostileProducerTests {
    /// Alice's two sessions and bob's, on a fresh database, and what each starts with: bob has a
    /// thread with a saved message; alice a job queued far in the future.
    struct Scene: Sendable {
        let owner: PostgresClient
        let url: DatabaseURL
        let producer: DatabaseURL
        let bobThread: UUID
        let bobMessage: UUID
    }

    static func scene(_ name: String, _ body: @Sendable @escaping (Scene) async throws -> Void) async throws {
        try await TestDatabase.with(name) { owner, url in
            try await RolesTests.loginRole("agentq_test_producer", in: "agentq_producer", owner)
            let producer = RolesTests.url(url, user: "agentq_test_producer")
            let (thread, message): (UUID, UUID) = try await RolesTests.session(producer, user: "bob") { bob in
                let thread: UUID = try await bob.scalar("SELECT agentq.create_thread(title => 'bob''s')")
                let message: UUID = try await bob.scalar("SELECT agentq.save_message(\(thread), 'user', 'my PIN is 4921')")
                return (thread, message)
            }
            try await body(Scene(owner: owner, url: url, producer: producer, bobThread: thread, bobMessage: message))
        }
    }

    /// Alice re-targets her own queued job at bob's thread (and makes it concurrent and due), or
    /// parks it at the head of his thread for ever: both are refused, and a worker then writes
    /// nothing into bob's thread.
    @Test(.timeLimit(.minutes(2)))
    func aProducerCannotRedirectItsJobToAnotherUsersThread() async throws {
        try await Self.scene("hostile_redirect") { s in
            let job: Int64 = try await RolesTests.session(s.producer, user: "alice") { alice in
                let job: Int64 = try await alice.scalar(
                    "SELECT agentq.generate(null, 'hello', options => '{\"run_at\": \"2100-01-01T00:00:00Z\"}')")
                let message = await expectError(
                    alice,
                    """
                    UPDATE agentq.jobs SET thread_id = \(s.bobThread), prompt_message_id = NULL, concurrent = true, run_at = now()
                     WHERE id = \(job)
                    """, "42501")
                #expect(message.contains("thread_id"), "\(message)")
                await expectError(
                    alice, "UPDATE agentq.jobs SET thread_id = \(s.bobThread), run_at = 'infinity' WHERE id = \(job)", "42501")
                await expectError(alice, "UPDATE agentq.jobs SET prompt_message_id = \(s.bobMessage) WHERE id = \(job)", "42501")
                await expectError(alice, "UPDATE agentq.jobs SET message_ids = array[\(s.bobMessage)] WHERE id = \(job)", "42501")
                await expectError(alice, "UPDATE agentq.jobs SET options = '{\"model\": \"mock:x\"}' WHERE id = \(job)", "42501")
                await expectError(alice, "UPDATE agentq.jobs SET run_at = now() WHERE id = \(job)", "42501")
                await expectError(
                    alice, "UPDATE agentq.jobs SET status = 'running', worker = 'me', lease_expires_at = 'infinity' WHERE id = \(job)",
                    "42501")
                // What the producer API does with its own job still works.
                #expect(try await alice.scalar("SELECT agentq.cancel(\(job))") == true)
                await expectError(alice, "UPDATE agentq.jobs SET status = 'queued', finished_at = NULL WHERE id = \(job)", "42501")
                return job
            }
            let worker = try WorkerProcess(url: s.url)
            defer { worker.signal(SIGKILL) }
            // Bob's thread is his: his next generation is not blocked, and holds no reply of alice's job.
            let bobJob: Int64 = try await RolesTests.session(s.producer, user: "bob") { bob in
                try await bob.scalar("SELECT agentq.generate(\(s.bobThread), 'and now?')")
            }
            try await eventually(timeout: .seconds(30), "bob's job succeeded") {
                try await s.owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(bobJob)") == "succeeded"
            }
            #expect(
                try await s.owner.scalar("SELECT count(*)::int FROM agentq.messages WHERE thread_id = \(s.bobThread) AND job_id = \(job)")
                    == 0)
            #expect(try await s.owner.scalar("SELECT thread_id FROM agentq.jobs WHERE id = \(job)") != s.bobThread)
        }
    }

    /// The head-of-line attack: a job of alice's moved onto bob's thread as a never-due head blocks
    /// bob's next generation (23505 on his thread's one head).
    @Test func aProducerCannotBlockAnotherUsersThread() async throws {
        try await Self.scene("hostile_block") { s in
            try await RolesTests.session(s.producer, user: "alice") { alice in
                let job: Int64 = try await alice.scalar(
                    "SELECT agentq.generate(null, 'hello', options => '{\"run_at\": \"2100-01-01T00:00:00Z\"}')")
                try? await alice.run(
                    "UPDATE agentq.jobs SET thread_id = \(s.bobThread), concurrent = false, run_at = 'infinity' WHERE id = \(job)")
            }
            try await RolesTests.session(s.producer, user: "bob") { bob in
                let job: Int64 = try await bob.scalar("SELECT agentq.generate(\(s.bobThread), 'still mine?')")
                #expect(try await bob.scalar("SELECT blocked FROM agentq.jobs WHERE id = \(job)") == false)
            }
        }
    }

    /// A plain INSERT is a producer path too: it may name only the producer's own thread and
    /// messages, and only a generation (embed jobs carry message ids the worker reads as they are).
    @Test func aPlainInsertNamesOnlyTheProducersOwnRows() async throws {
        try await Self.scene("hostile_insert") { s in
            try await RolesTests.session(s.producer, user: "alice") { alice in
                let mine: UUID = try await alice.scalar("SELECT agentq.create_thread()")
                await expectError(
                    alice, "INSERT INTO agentq.jobs (thread_id, options) VALUES (\(s.bobThread), '{\"prompt\": \"x\"}')", "P0002")
                await expectError(
                    alice, "INSERT INTO agentq.jobs (thread_id, prompt_message_id) VALUES (\(mine), \(s.bobMessage))", "P0002")
                await expectError(
                    alice, "INSERT INTO agentq.jobs (thread_id, prompt_message_id) VALUES (\(s.bobThread), \(s.bobMessage))", "P0002")
                let embed = await expectError(
                    alice,
                    """
                    INSERT INTO agentq.jobs (kind, thread_id, options, message_ids)
                    VALUES ('embed', \(s.bobThread), '{"model": "mock:embed-8"}', array[\(s.bobMessage)])
                    """, "42501")
                #expect(embed.contains("generate jobs only"), "\(embed)")
                await expectError(
                    alice,
                    """
                    INSERT INTO agentq.jobs (thread_id, options, message_ids)
                    VALUES (\(mine), '{"prompt": "x"}', array[\(s.bobMessage)])
                    """, "42501")
            }
            #expect(try await s.owner.scalar("SELECT count(*)::int FROM agentq.jobs") == 0)
        }
    }
}
