import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Context from search (text and vector legs, neighbours, other threads) and embedding management.
extension MemoryTests {
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
