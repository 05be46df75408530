import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Messages, search, idempotency keys, the registry and the owner's limits against a hostile producer.
extension HostileProducerTests {
    /// Alice saves a message on her own thread in bob's name: refused (by save_message and by a plain
    /// INSERT). User-wide search goes by the threads a user owns, so even a row that says otherwise
    /// (an embedding written by the owner) never reaches bob's search.
    @Test func aMessageBelongsToItsThreadsUser() async throws {
        try await Self.scene("hostile_messages") { s in
            let (thread, message): (UUID, UUID) = try await RolesTests.session(s.producer, user: "alice") { alice in
                let thread: UUID = try await alice.scalar("SELECT agentq.create_thread()")
                let error = await expectError(
                    alice, "SELECT agentq.save_message(\(thread), 'user', 'buy shares of ACME now', user_id => 'bob')", "22023")
                #expect(error.contains("not the user of thread"), "\(error)")
                await expectError(
                    alice,
                    """
                    INSERT INTO agentq.messages (thread_id, user_id, ord, step, role, text)
                    VALUES (\(thread), 'bob', 100, 0, 'user', 'buy shares of ACME now')
                    """, "42501")
                let message: UUID = try await alice.scalar("SELECT agentq.save_message(\(thread), 'user', 'buy shares of ACME now')")
                await expectError(alice, "UPDATE agentq.messages SET user_id = 'bob' WHERE id = \(message)", "42501")
                return (thread, message)
            }
            #expect(
                try await s.owner.scalar("SELECT count(*)::int FROM agentq.messages WHERE user_id = 'bob' AND thread_id = \(thread)") == 0)
            // The owner's rows take the thread's user too.
            try await s.owner.run("UPDATE agentq.messages SET user_id = 'bob' WHERE id = \(message)")
            #expect(try await s.owner.scalar("SELECT user_id FROM agentq.messages WHERE id = \(message)") == "alice")
            try await s.owner.run(
                """
                INSERT INTO agentq.embeddings (message_id, model, dims, thread_id, user_id, embedding)
                VALUES (\(message), 'test:e', 3, \(thread), 'bob', '[1,0,0]')
                """)
            let text: Int = try await s.owner.scalar("SELECT count(*)::int FROM agentq.search_messages('ACME', user_id => 'bob')")
            let vector: Int = try await s.owner.scalar(
                "SELECT count(*)::int FROM agentq.search_messages(null, user_id => 'bob', query_embedding => '[1,0,0]', model => 'test:e')")
            #expect(text == 0 && vector == 0, "bob's user-wide search finds alice's message")
            #expect(
                try await s.owner.scalar(
                    "SELECT count(*)::int FROM agentq.search_messages(null, user_id => 'alice', query_embedding => '[1,0,0]', model => 'test:e')"
                )
                    == 1)
        }
    }

    /// An idempotency key is the user's: alice's key neither returns bob's job nor collides with it.
    @Test func idempotencyKeysAreScopedByUser() async throws {
        try await Self.scene("hostile_idempotency") { s in
            let alices: Int64 = try await RolesTests.session(s.producer, user: "alice") { alice in
                try await alice.scalar("SELECT agentq.generate(null, 'a', options => '{\"idempotency_key\": \"k\"}')")
            }
            try await RolesTests.session(s.producer, user: "bob") { bob in
                let bobs: Int64 = try await bob.scalar("SELECT agentq.generate(null, 'b', options => '{\"idempotency_key\": \"k\"}')")
                #expect(bobs != alices)
                let again: Int64 = try await bob.scalar("SELECT agentq.generate(null, 'b', options => '{\"idempotency_key\": \"k\"}')")
                #expect(again == bobs)
                try await bob.run("INSERT INTO agentq.jobs (options) VALUES ('{\"prompt\": \"p\", \"idempotency_key\": \"k2\"}')")
                await expectError(
                    bob, "INSERT INTO agentq.jobs (options) VALUES ('{\"prompt\": \"p\", \"idempotency_key\": \"k2\"}')", "23505")
            }
            try await RolesTests.session(s.producer, user: "alice") { alice in
                let again: Int64 = try await alice.scalar("SELECT agentq.generate(null, 'a', options => '{\"idempotency_key\": \"k\"}')")
                #expect(again == alices)
                try await alice.run("INSERT INTO agentq.jobs (options) VALUES ('{\"prompt\": \"p\", \"idempotency_key\": \"k2\"}')")
            }
            #expect(try await s.owner.scalar("SELECT count(DISTINCT user_id)::int FROM agentq.jobs WHERE idempotency_key = 'k2'") == 2)
        }
    }

    /// The producer reads the tool registry without its targets, and no provider.
    @Test func aProducerReadsNoToolTargetsNorProviders() async throws {
        try await Self.scene("hostile_registry") { s in
            try await s.owner.run("INSERT INTO agentq.tools (name, kind, target) VALUES ('hook', 'http', 'https://hooks.example/t/SECRET')")
            try await s.owner.run(
                "INSERT INTO agentq.providers (name, kind, base_url) VALUES ('corp', 'openai', 'https://llm.corp.example/v1')")
            try await RolesTests.session(s.producer, user: "alice") { (alice: PostgresClient) async throws in
                await expectError(alice, "SELECT target FROM agentq.tools", "42501")
                await expectError(alice, "SELECT * FROM agentq.tools", "42501")
                await expectError(alice, "SELECT count(*) FROM agentq.providers", "42501")
                #expect(try await alice.scalar("SELECT kind FROM agentq.tools WHERE name = 'hook'") == "http")
                #expect(try await alice.scalar("SELECT parameters->>'type' FROM agentq.tools WHERE name = 'hook'") == "object")
            }
        }
    }

    /// The owner's limits (settings priority_min/max, max_attempts_limit, allow_log_raw) hold for a
    /// producer, on every path; the owner is not held to them. Raw LLM calls are pruned.
    @Test func aProducerStaysWithinTheOwnersLimits() async throws {
        try await Self.scene("hostile_limits") { s in
            try await RolesTests.session(s.producer, user: "alice") { alice in
                let thread: UUID = try await alice.scalar("SELECT agentq.create_thread()")
                for (options, limit) in [
                    (#"{"priority": -101}"#, "priority_min"), (#"{"priority": 101}"#, "priority_max"),
                    (#"{"max_attempts": 21}"#, "max_attempts_limit"), (#"{"log_raw": true}"#, "allow_log_raw")
                ] {
                    let error = await expectError(alice, "SELECT agentq.generate(\(thread), 'x', options => \(options)::jsonb)", "22023")
                    #expect(error.contains(limit), "\(options): \(error)")
                }
                await expectError(
                    alice, "INSERT INTO agentq.jobs (thread_id, priority, options) VALUES (\(thread), -5000, '{\"prompt\": \"x\"}')",
                    "22023")
                await expectError(
                    alice, "INSERT INTO agentq.jobs (thread_id, max_attempts, options) VALUES (\(thread), 100, '{\"prompt\": \"x\"}')",
                    "22023")
                await expectError(
                    alice, "SELECT agentq.update_thread(\(thread), metadata => '{\"agent_options\": {\"log_raw\": true}}')", "22023")
                await expectError(alice, "SELECT agentq.create_thread(metadata => '{\"agent_options\": {\"log_raw\": true}}')", "22023")
                _ = try await alice.scalar(
                    "SELECT agentq.generate(\(thread), 'x', options => '{\"priority\": -100, \"max_attempts\": 20, \"log_raw\": false}')",
                    as: Int64.self)
            }
            try await s.owner.run("UPDATE agentq.settings SET value = 'true' WHERE key = 'allow_log_raw'")
            try await RolesTests.session(s.producer, user: "alice") { alice in
                _ = try await alice.scalar("SELECT agentq.generate(null, 'x', options => '{\"log_raw\": true}')", as: Int64.self)
            }
            _ = try await s.owner.scalar(
                "SELECT agentq.generate(null, 'x', options => '{\"priority\": -5000, \"max_attempts\": 50}')", as: Int64.self)
            try await s.owner.run(
                """
                INSERT INTO agentq.llm_calls (at, provider, model) VALUES (now() - interval '8 days', 'mock', 'old'), (now(), 'mock', 'new')
                """)
            let pruned: String = try await s.owner.scalar("SELECT agentq.prune(100)::text")
            #expect(pruned.contains("\"llm_calls\": 1"), "\(pruned)")
            #expect(try await s.owner.rows("SELECT model FROM agentq.llm_calls", as: String.self) == ["new"])
        }
    }
}
