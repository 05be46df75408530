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

    /// Four earlier turns; the third mentions zebras.
    static func seedTurns(_ client: PostgresClient, agent: String) async throws -> UUID {
        let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
        for (user, assistant) in [
            ("hello there", "hi"), ("I saw a zebra at the zoo", "nice stripes"),
            ("weather today", "sunny"), ("what time is it", "noon")
        ] {
            try await client.run("SELECT agentq.save_message(\(thread), 'user', \(user), agent_name => \(agent))")
            try await client.run("SELECT agentq.save_message(\(thread), 'assistant', \(assistant), agent_name => \(agent))")
        }
        return thread
    }

    /// The contents of the messages of the job's first model request.
    static func requestContents(_ client: PostgresClient, job: Int64) async throws -> [String] {
        let request: String = try await client.scalar(
            "SELECT request::text FROM agentq.llm_calls WHERE job_id = \(job) ORDER BY id LIMIT 1")
        guard case .array(let messages)? = try JSONValue.parse(request)["messages"] else { throw TestFailure("no messages in \(request)") }
        return messages.compactMap { $0["content"]?.stringValue }
    }

    @Test func textSearchHitsAndNeighboursReachTheModel() async throws {
        try await TestDatabase.with("memory_context_text") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(
                on: client,
                agentOptions: """
                    {"log_raw": true, "context": {"recent_messages": 2,
                     "search": {"text": true, "limit": 1, "message_range": {"before": 1, "after": 0}}}}
                    """)
            let thread = try await Self.seedTurns(client, agent: "remote")
            let prompt = "[mock reply=\"ok\"] tell me about the zebra"
            // What a generation would send, from psql: the hit's turn and the one before it, then the prompt
            // (the recent window of 2 holds the prompt and a partial turn, which is cut).
            let preview = try await client.rows(
                """
                SELECT section, text FROM agentq.context_messages(\(thread), \(prompt), '{"agent": "remote"}')
                """, as: (String, String).self)
            #expect(preview.map(\.0) == ["search", "search", "search", "search", "prompt"])
            #expect(preview.map(\.1) == ["hello there", "hi", "I saw a zebra at the zoo", "nice stripes", prompt])
            let worker = try WorkerProcess(url: url)
            let job: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), \(prompt), 'remote')")
            try await eventually("the reply") { try await Self.succeeded(client, job) }
            let sent = try await Self.requestContents(client, job: job)
            #expect(sent == ["You are a test.", "hello there", "hi", "I saw a zebra at the zoo", "nice stripes", prompt])
            // Without search the same thread sends only the recent window.
            let plain: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(\(thread), '[mock reply="ok"] zebra again', 'remote',
                                       options => '{"context": {"recent_messages": 2}}')
                """)
            try await eventually("the second reply") { try await Self.succeeded(client, plain) }
            let plainSent = try await Self.requestContents(client, job: plain)
            #expect(plainSent == ["You are a test.", "[mock reply=\"ok\"] zebra again"])
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func vectorSearchEmbedsThePromptOnceAndFindsOtherThreads() async throws {
        try await TestDatabase.with("memory_context_vector") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(
                on: client,
                agentOptions: """
                    {"log_raw": true, "context": {"recent_messages": 1,
                     "search": {"vector": true, "limit": 1, "other_threads": true, "message_range": {"before": 0, "after": 0}}}}
                    """)
            try await client.run("UPDATE agentq.agents SET embedding_model = 'http:embed-64' WHERE name = 'remote'")
            let worker = try WorkerProcess(url: url)
            let old = try await Self.seedTurns(client, agent: "remote")
            try await eventually("the old thread embedded") {
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE thread_id = \(old)") == 8
            }
            // Another user's zebra is never found.
            let stranger: UUID = try await client.scalar("SELECT agentq.create_thread('u2')")
            try await client.run("SELECT agentq.save_message(\(stranger), 'user', 'zebra zoo zebra zoo', agent_name => 'remote')")
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let prompt = "[mock reply=\"ok\"] zebra zoo"
            let job: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), \(prompt), 'remote')")
            try await eventually("the reply") { try await Self.succeeded(client, job) }
            // The hit's turn (other_threads, same user) comes before the prompt: a vector hit, since "zoo" and
            // "zebra" share no stem with any text a keyword search was asked for (text is off).
            let sent = try await Self.requestContents(client, job: job)
            #expect(sent == ["You are a test.", "I saw a zebra at the zoo", "nice stripes", prompt])
            // The prompt's vector was computed once and saved with the prompt message.
            let promptID: UUID = try await client.scalar("SELECT prompt_message_id FROM agentq.jobs WHERE id = \(job)")
            #expect(
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE message_id = \(promptID)", as: Int.self) == 1)
            #expect(
                Self.close(
                    try await Self.vector(client, message: promptID, model: "http:embed-64"),
                    MockEmbedding.vector(for: prompt, dimensions: 64)))
            // A prompt saved with embed => false is embedded for the search, but no vector is kept.
            let unsaved: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(\(thread), \(prompt + " again"), 'remote', options => '{"embed": false}')
                """)
            try await eventually("the second reply") { try await Self.succeeded(client, unsaved) }
            let secondSent = try await Self.requestContents(client, job: unsaved)
            // (Its nearest earlier turn is now the first prompt of this thread, with its reply.)
            #expect(secondSent == ["You are a test.", prompt, "ok", prompt + " again"])
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.embeddings e JOIN agentq.jobs j ON j.prompt_message_id = e.message_id
                     WHERE j.id = \(unsaved)
                    """, as: Int.self) == 0)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func reembedWithANewModelAndManageEmbeddings() async throws {
        try await TestDatabase.with("memory_manage") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            try await client.run("UPDATE agentq.agents SET embedding_model = 'http:embed-8' WHERE name = 'remote'")
            let worker = try WorkerProcess(url: url)
            let thread = try await Self.seedTurns(client, agent: "remote")
            let other = try await Self.seedTurns(client, agent: "remote")
            try await eventually("the first model's vectors") {
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE model = 'http:embed-8'") == 16
            }
            // Re-embed one thread with a new model, then everything; the second call only adds what is missing.
            #expect(try await client.scalar("SELECT agentq.reembed('http:embed-16', thread_id => \(thread))", as: Int.self) == 1)
            try await eventually("the thread re-embedded") {
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE model = 'http:embed-16'") == 8
            }
            // With no worker running, a second call finds everything embedded or waiting in a queued job.
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
            #expect(try await client.scalar("SELECT agentq.reembed('http:embed-16')", as: Int.self) == 1)
            #expect(try await client.scalar("SELECT agentq.reembed('http:embed-16')", as: Int.self) == 0)
            let resumed = try WorkerProcess(url: url)
            try await eventually("everything re-embedded") {
                try await client.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE model = 'http:embed-16'") == 16
            }
            #expect(try await client.scalar("SELECT agentq.reembed('http:embed-16')", as: Int.self) == 0)
            let stats = try await client.rows(
                "SELECT model, dims, vectors::int FROM agentq.embedding_stats ORDER BY model",
                as: (String, Int, Int).self)
            #expect(stats.map(\.0) == ["http:embed-16", "http:embed-8"] && stats.map(\.1) == [16, 8] && stats.map(\.2) == [16, 16])
            // The new model's vectors are searched as the new model's only.
            let zebra = MockEmbedding.vector(for: "I saw a zebra at the zoo", dimensions: 16).map { "\($0)" }.joined(separator: ",")
            let found = try await client.rows(
                """
                SELECT text FROM agentq.search_messages(null, \(thread), query_embedding => \("[\(zebra)]")::vector,
                                                        model => 'http:embed-16', lim => 1)
                """, as: String.self)
            #expect(found == ["I saw a zebra at the zoo"])
            // Pages of a model's vectors, in message_id order.
            var seen: [UUID] = []
            var after: UUID? = nil
            while true {
                let page = try await client.rows(
                    """
                    SELECT message_id FROM agentq.list_embeddings('http:embed-16', after => \(after), lim => 5)
                    """, as: UUID.self)
                if page.isEmpty { break }
                seen += page
                after = page.last
            }
            #expect(seen.count == 16 && Set(seen).count == 16)
            #expect(
                try await client.rows("SELECT message_id FROM agentq.list_embeddings('http:embed-16', \(other))", as: UUID.self).count == 8)
            // Delete by thread, by model.
            #expect(try await client.scalar("SELECT agentq.delete_embeddings(thread_id => \(other))", as: Int64.self) == 16)
            #expect(try await client.scalar("SELECT agentq.delete_embeddings('http:embed-8')", as: Int64.self) == 8)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.embeddings", as: Int.self) == 8)
            // Hidden from user-wide search, still found in its thread.
            let zebraID: UUID = try await client.scalar("SELECT id FROM agentq.messages WHERE thread_id = \(thread) AND text LIKE 'I saw%'")
            try await client.run("SELECT agentq.set_search_hidden(\(zebraID))")
            #expect(
                try await client.rows("SELECT message_id FROM agentq.search_messages('zebra', user_id => 'u1')", as: UUID.self)
                    .count == 1)  // the other thread's zebra only
            #expect(
                try await client.rows("SELECT message_id FROM agentq.search_messages('zebra', \(thread))", as: UUID.self)
                    == [zebraID])
            // Delete by user.
            #expect(try await client.scalar("SELECT agentq.delete_embeddings(user_id => 'u1')", as: Int64.self) == 8)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.embeddings", as: Int.self) == 0)
            // Bad input names the problem.
            await expectError(client, "SELECT agentq.reembed('no-colon')", "22023")
            await expectError(client, "SELECT agentq.reembed('http:embed-16', thread_id => gen_random_uuid())", "P0002")
            await expectError(client, "SELECT agentq.delete_embeddings()", "22004")
            await expectError(client, "SELECT * FROM agentq.list_embeddings('http:embed-16', lim => 0)", "22023")
            await expectError(client, "SELECT agentq.set_search_hidden(gen_random_uuid())", "P0002")
            await expectError(client, "SELECT * FROM agentq.context_messages(gen_random_uuid())", "P0002")
            await expectError(client, "SELECT * FROM agentq.context_messages(\(thread), options => '{\"agent\": \"nobody\"}')", "42704")
            await expectError(client, "SELECT * FROM agentq.context_messages(\(thread), options => '{\"contxt\": {}}')", "22023")
            resumed.signal(SIGTERM)
            #expect(await resumed.waitForExit() == 0)
        }
    }
}
