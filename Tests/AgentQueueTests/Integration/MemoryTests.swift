import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Memory: embed jobs enqueued with their messages and run by a real worker over HTTP to
/// `agentq mock-llm`; embed faults; search hits and neighbours in the request the model receives;
/// re-embedding with a new model and the management functions.
@Suite struct MemoryTests {
    static func vector(_ client: PostgresClient, message: UUID, model: String) async throws -> [Float] {
        let text: String = try await client.scalar(
            """
            SELECT embedding::text FROM agentq.embeddings WHERE message_id = \(message) AND model = \(model)
            """)
        return text.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",").compactMap { Float($0) }
    }

    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 }
    }

    static func succeeded(_ client: PostgresClient, _ job: Int64) async throws -> Bool {
        try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)", as: String.self) == "succeeded"
    }

    @Test func embedJobsAreEnqueuedWithTheirMessages() async throws {
        try await TestDatabase.with("memory_enqueue") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let embedJobs = "SELECT count(*)::int FROM agentq.jobs WHERE kind = 'embed'"
            // No agent embeds: nothing is enqueued.
            try await client.run("SELECT agentq.save_message(\(thread), 'user', 'hello')")
            #expect(try await client.scalar(PostgresQuery(unsafeSQL: embedJobs), as: Int.self) == 0)
            try await client.run("UPDATE agentq.agents SET embedding_model = 'mock:embed-8' WHERE name = 'default'")
            // One statement, one job, holding every embeddable row in order (not the empty, the
            // embed = false or the tool row).
            try await client.run(
                """
                INSERT INTO agentq.messages (thread_id, user_id, ord, step, role, content, text, embed, tool) VALUES
                  (\(thread), 'u1', 10, 0, 'user', '[]', 'one', true, false),
                  (\(thread), 'u1', 10, 1, 'assistant', '[]', 'two', true, false),
                  (\(thread), 'u1', 10, 2, 'assistant', '[]', 'three', true, false),
                  (\(thread), 'u1', 10, 3, 'assistant', '[]', '', true, false),
                  (\(thread), 'u1', 10, 4, 'assistant', '[]', 'not me', false, false),
                  (\(thread), 'u1', 10, 5, 'tool', '[]', 'a result', true, true)
                """)
            let job = try await client.rows(
                """
                SELECT id, (SELECT array_agg(m.text ORDER BY n) FROM unnest(message_ids) WITH ORDINALITY x(id, n)
                              JOIN agentq.messages m ON m.id = x.id),
                       options->>'model', priority, user_id, thread_id
                  FROM agentq.jobs WHERE kind = 'embed' ORDER BY id DESC LIMIT 1
                """, as: (Int64, [String], String, Int, String?, UUID?).self)
            #expect(job.first?.1 == ["one", "two", "three"])
            #expect(job.first?.2 == "mock:embed-8" && job.first?.3 == 10 && job.first?.4 == "u1" && job.first?.5 == thread)
            // embed_batch_size splits a statement's rows into several jobs.
            try await client.run("UPDATE agentq.settings SET value = '2' WHERE key = 'embed_batch_size'")
            let before: Int = try await client.scalar(PostgresQuery(unsafeSQL: embedJobs))
            try await client.run(
                """
                INSERT INTO agentq.messages (thread_id, user_id, ord, step, role, content, text)
                SELECT \(thread), 'u1', 11, s, 'assistant', '[]', 'batch ' || s FROM generate_series(0, 2) s
                """)
            #expect(try await client.scalar(PostgresQuery(unsafeSQL: embedJobs), as: Int.self) == before + 2)
            // A rolled-back message takes its job with it (same transaction, no commit of its own).
            let counted: Int = try await client.withConnection { conn in
                _ = try await conn.query("BEGIN", logger: TestDatabase.logger).collect()
                _ = try await conn.query("SELECT agentq.save_message(\(thread), 'user', 'rolled back')", logger: TestDatabase.logger)
                    .collect()
                var inside = 0
                for try await n in try await conn.query(PostgresQuery(unsafeSQL: embedJobs), logger: TestDatabase.logger).decode(Int.self) {
                    inside = n
                }
                _ = try await conn.query("ROLLBACK", logger: TestDatabase.logger).collect()
                return inside
            }
            #expect(counted == before + 3)
            #expect(try await client.scalar(PostgresQuery(unsafeSQL: embedJobs), as: Int.self) == before + 2)
            // Inputs are cut at embed_max_chars (10,000); a vector saved meanwhile drops its message.
            let long: UUID = try await client.scalar("SELECT agentq.save_message(\(thread), 'user', repeat('x ', 6000))")
            #expect(
                try await client.scalar(
                    """
                    SELECT length(input)::int FROM agentq.embed_inputs(array(SELECT id FROM agentq.jobs WHERE kind = 'embed'))
                     WHERE message_id = \(long)
                    """, as: Int.self) == 10_000)
            try await client.run(
                """
                SELECT agentq.save_embeddings(jsonb_build_array(jsonb_build_object('message_id', id, 'model', 'mock:embed-8',
                       'embedding', '[1,0,0,0,0,0,0,0]'::jsonb))) FROM agentq.messages WHERE text = 'one'
                """)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.embed_inputs(array(SELECT id FROM agentq.jobs WHERE kind = 'embed'))
                     WHERE input IN ('one', 'two', 'three')
                    """, as: Int.self) == 2)
            // A worker that does not hold a job cannot save its vectors.
            #expect(
                try await client.scalar(
                    """
                    SELECT agentq.save_job_embeddings('nobody', max(id), 1, '[]') IS NULL FROM agentq.jobs WHERE kind = 'embed'
                    """, as: Bool.self))
            // A failed message loses its vector; an edited one waits in its job already (not enqueued twice).
            try await client.run("UPDATE agentq.messages SET status = 'failed', error = 'test' WHERE text = 'one'")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.embeddings", as: Int.self) == 0)
            let jobsNow: Int = try await client.scalar(PostgresQuery(unsafeSQL: embedJobs))
            try await client.run("UPDATE agentq.messages SET text = 'two, edited' WHERE text = 'two'")
            #expect(try await client.scalar(PostgresQuery(unsafeSQL: embedJobs), as: Int.self) == jobsNow)
            // embed_queue sends them to a queue of their own.
            try await client.run("UPDATE agentq.settings SET value = '\"embed\"' WHERE key = 'embed_queue'")
            try await client.run("SELECT agentq.save_message(\(thread), 'user', 'queued elsewhere')")
            #expect(
                try await client.scalar("SELECT queue FROM agentq.jobs WHERE kind = 'embed' ORDER BY id DESC LIMIT 1", as: String.self)
                    == "embed")
        }
    }

    @Test func embedJobsEmbedMessagesOverHTTP() async throws {
        try await TestDatabase.with("memory_embed") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            try await client.run("UPDATE agentq.agents SET embedding_model = 'http:embed-32' WHERE name = 'remote'")
            let worker = try WorkerProcess(url: url)
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let job: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(\(thread), '[mock reply="zebras have stripes"] tell me about zebras', 'remote')
                """)
            let elsewhere: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let skipped: UUID = try await client.scalar(
                """
                SELECT agentq.save_message(\(elsewhere), 'user', 'not for search', agent_name => 'remote', embed => false)
                """)
            try await eventually("the prompt and the reply embedded") {
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE thread_id = \(thread)") == 2
            }
            #expect(try await Self.succeeded(client, job))
            let rows = try await client.rows(
                """
                SELECT m.role, e.model, e.dims, e.user_id, m.id FROM agentq.embeddings e
                  JOIN agentq.messages m ON m.id = e.message_id WHERE e.thread_id = \(thread) ORDER BY m.ord, m.step
                """, as: (String, String, Int, String?, UUID).self)
            #expect(rows.map(\.0) == ["user", "assistant"])
            #expect(rows.allSatisfy { $0.1 == "http:embed-32" && $0.2 == 32 && $0.3 == "u1" })
            // The vectors are the mock server's, for the message text.
            let reply = try await Self.vector(client, message: rows[1].4, model: "http:embed-32")
            #expect(Self.close(reply, MockEmbedding.vector(for: "zebras have stripes", dimensions: 32)))
            // One usage row per embeddings request, kind embedding, over the http provider.
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.usage u JOIN agentq.jobs j ON j.id = u.job_id
                     WHERE j.kind = 'embed' AND j.thread_id = \(thread) AND u.kind = 'embedding' AND u.provider = 'http'
                       AND u.model = 'embed-32' AND u.prompt_tokens > 0 AND u.raw->>'error' IS NULL
                    """, as: Int.self) == 2)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.jobs WHERE kind = 'embed' AND \(skipped) = ANY (message_ids)
                    """, as: Int.self) == 0)
            // A refused input (a request with it answers HTTP 400) costs only its own vector: the
            // request is split until the refused message is alone.
            try await client.run(
                """
                INSERT INTO agentq.messages (thread_id, user_id, agent_name, ord, step, role, content, text)
                SELECT \(elsewhere), 'u1', 'remote', 5, s, 'assistant', '[]',
                       CASE WHEN s = 2 THEN 'please [embed refuse] this' ELSE 'batch ' || s END
                  FROM generate_series(0, 3) s
                """)
            try await eventually("the batch's job done") {
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.jobs WHERE kind = 'embed' AND thread_id = \(elsewhere) AND status = 'succeeded'
                    """) == 1
            }
            #expect(
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE thread_id = \(elsewhere)", as: Int.self) == 3)
            #expect(
                try await client.scalar(
                    """
                    SELECT jsonb_array_length(result->'object'->'refused') FROM agentq.jobs WHERE kind = 'embed' AND thread_id = \(elsewhere)
                    """, as: Int.self) == 1)
            // An edited message is embedded again, from its new text.
            try await client.run("UPDATE agentq.messages SET text = 'zebras and horses' WHERE id = \(rows[0].4)")
            try await eventually("the edited prompt embedded again") {
                let count: Int = try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE message_id = \(rows[0].4)")
                guard count == 1 else { return false }
                return Self.close(
                    try await Self.vector(client, message: rows[0].4, model: "http:embed-32"),
                    MockEmbedding.vector(for: "zebras and horses", dimensions: 32))
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func embedFaultsRetryAndNeverHoldUpGeneration() async throws {
        try await TestDatabase.with("memory_faults") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            try await client.run("UPDATE agentq.agents SET embedding_model = 'http:embed-8-fail-2' WHERE name = 'remote'")
            try await client.run(
                """
                INSERT INTO agentq.agents (name, model, embedding_model) VALUES ('broken', 'http:mock', 'http:embed-8-fail-permanent')
                """)
            let worker = try WorkerProcess(url: url, arguments: ["--retry-base-ms", "50"])
            let flaky: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let broken: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let first: Int64 = try await client.scalar("SELECT agentq.generate(\(flaky), '[mock reply=\"fine\"] hi', 'remote')")
            let second: Int64 = try await client.scalar("SELECT agentq.generate(\(broken), '[mock reply=\"fine too\"] hello', 'broken')")
            try await eventually("both generations succeeded") {
                let a = try await Self.succeeded(client, first)
                let b = try await Self.succeeded(client, second)
                return a && b
            }
            // Two failed requests (HTTP 500), then the retried jobs embed both messages.
            try await eventually("the flaky model's vectors") {
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE thread_id = \(flaky)") == 2
            }
            try await eventually("the flaky model's jobs succeeded") {
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.jobs WHERE kind = 'embed' AND thread_id = \(flaky) AND status = 'succeeded'
                    """) == 2
            }
            #expect(
                try await client.scalar(
                    """
                    SELECT max(attempt)::int FROM agentq.jobs WHERE kind = 'embed' AND thread_id = \(flaky)
                    """, as: Int.self) >= 2)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.usage WHERE kind = 'embedding' AND thread_id = \(flaky) AND raw ? 'error'
                    """, as: Int.self) == 2)
            // A request the server refuses (HTTP 400) fails its job at once.
            try await eventually("the broken model's jobs failed") {
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.jobs WHERE kind = 'embed' AND thread_id = \(broken)
                       AND status = 'failed' AND attempt = 1 AND last_error IS NOT NULL
                    """) == 2
            }
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE thread_id = \(broken)", as: Int.self) == 0)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

}
