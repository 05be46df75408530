import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// search_messages on a small corpus with known answers: text, vector and hybrid ranking, isolation
/// by model, dimension and user, filtered HNSW searches that still fill their limit, and RLS.
@Suite struct SearchTests {
    /// Saves a message and its vector; returns the message id.
    @discardableResult
    static func add(_ client: PostgresClient, thread: UUID, _ text: String, vector: [Double]?, model: String = "mock:e3") async throws
        -> UUID
    {
        let id: UUID = try await client.scalar("SELECT agentq.save_message(\(thread), 'user', \(text))")
        if let vector {
            let literal = "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
            _ = try await client.scalar(
                """
                SELECT agentq.save_embeddings(jsonb_build_array(jsonb_build_object('message_id', \(id), 'model', \(model),
                                                                                   'embedding', \(literal)::jsonb)))
                """, as: Int.self)
        }
        return id
    }

    static func hits(_ client: PostgresClient, _ sql: PostgresQuery) async throws -> [String] {
        try await client.rows(sql, as: String.self)
    }

    @Test func textVectorAndHybridRankKnownAnswers() async throws {
        try await TestDatabase.with("search_rank") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            try await Self.add(client, thread: thread, "Postgres queues claim jobs with SKIP LOCKED", vector: [1, 0, 0])
            try await Self.add(client, thread: thread, "A worker claims rows and runs the jobs", vector: [0.8, 0.6, 0])
            try await Self.add(client, thread: thread, "The weather in Oslo is cold and wet", vector: [0, 0, 1])
            try await Self.add(client, thread: thread, "Queues of people at the bakery", vector: [0, 1, 0])
            // Text: stemming (english) matches "queue" to "Queues"; both queue messages, the denser match first.
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages('queue claim', \(thread))")
                    == ["Postgres queues claim jobs with SKIP LOCKED"])
            #expect(try await Self.hits(client, "SELECT text FROM agentq.search_messages('queues', \(thread))").count == 2)
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages('queue OR weather', \(thread), lim => 1)").count == 1)
            // Vector: cosine order.
            #expect(
                try await Self.hits(
                    client,
                    """
                    SELECT text FROM agentq.search_messages(null, \(thread), query_embedding => '[0.6,0.8,0]', model => 'mock:e3')
                    """) == [
                        "A worker claims rows and runs the jobs", "Queues of people at the bakery",
                        "Postgres queues claim jobs with SKIP LOCKED", "The weather in Oslo is cold and wet"
                    ])
            // Hybrid: "bakery" is the only text hit and the 4th vector hit, so 1/61 + 1/64 puts it above
            // the first vector hit (1/61).
            let fused = try await client.rows(
                """
                SELECT text, score, text_rank, vector_rank FROM agentq.search_messages('bakery', \(thread), lim => 2,
                       query_embedding => '[1,0,0.1]', model => 'mock:e3')
                """, as: (String, Double, Int?, Int?).self)
            #expect(fused.map(\.0) == ["Queues of people at the bakery", "Postgres queues claim jobs with SKIP LOCKED"])
            #expect(abs((fused.first?.1 ?? 0) - (1.0 / 61 + 1.0 / 64)) < 1e-12 && fused.first?.2 == 1 && fused.first?.3 == 4)
            #expect(fused.last?.2 == nil && fused.last?.3 == 1)
            // Tool messages and failed messages are never results.
            try await client.run("UPDATE agentq.messages SET status = 'failed', error = 'test' WHERE text LIKE 'Queues%'")
            #expect(try await Self.hits(client, "SELECT text FROM agentq.search_messages('queues', \(thread))").count == 1)
            await expectError(client, "SELECT * FROM agentq.search_messages('x')", "22004")
            await expectError(client, "SELECT * FROM agentq.search_messages('x', \(thread), lim => 0)", "22023")
            await expectError(client, "SELECT * FROM agentq.search_messages(null, \(thread), query_embedding => '[1,0,0,0]')", "22004")
        }
    }

    @Test func searchesNeverMixModelsDimensionsOrUsers() async throws {
        try await TestDatabase.with("search_isolation") { client, _ in
            let a: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let a2: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let b: UUID = try await client.scalar("SELECT agentq.create_thread('u2')")
            try await Self.add(client, thread: a, "model one three dims", vector: [1, 0, 0], model: "m:one")
            try await Self.add(client, thread: a, "model two three dims", vector: [1, 0, 0], model: "m:two")
            try await Self.add(client, thread: a, "model one four dims", vector: [1, 0, 0, 0], model: "m:one")
            try await Self.add(client, thread: a2, "other thread of u1", vector: [1, 0, 0], model: "m:one")
            // Hidden after its vector was saved: neither leg finds it user-wide.
            let hidden = try await Self.add(client, thread: a2, "hidden from user-wide search", vector: [1, 0, 0], model: "m:one")
            try await client.run("UPDATE agentq.messages SET search_hidden = true WHERE id = \(hidden)")
            try await Self.add(client, thread: b, "user two's message", vector: [1, 0, 0], model: "m:one")
            #expect(
                try await client.scalar(
                    "SELECT count(*)::int FROM pg_indexes WHERE indexname IN ('embeddings_hnsw_3', 'embeddings_hnsw_4')") == 2)

            let oneThree = try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, null, 'u1', 10, '[1,0,0]', 'm:one')")
            #expect(Set(oneThree) == ["model one three dims", "other thread of u1"], "one model, one dimension, one user; hidden left out")
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, \(a2), null, 10, '[1,0,0]', 'm:one')").contains(
                    "hidden from user-wide search"))
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, null, 'u1', 10, '[1,0,0,0]', 'm:one')")
                    == ["model one four dims"])
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, null, 'u1', 10, '[1,0,0]', 'm:two')")
                    == ["model two three dims"])
            #expect(try await Self.hits(client, "SELECT text FROM agentq.search_messages('hidden', null, 'u1')").isEmpty)
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages('hidden', \(a2))") == ["hidden from user-wide search"])
            #expect(try await Self.hits(client, "SELECT text FROM agentq.search_messages('message', null, 'u1')").isEmpty)
            #expect(try await Self.hits(client, "SELECT text FROM agentq.search_messages('message', null, 'u2')") == ["user two's message"])
        }
    }

    /// 3,000 vectors of 64 dimensions over 30 users: a user-filtered search (1 in 30 rows passes)
    /// returns its full limit. At this size the planner scans exactly (checked with EXPLAIN), so the
    /// HNSW iterative-scan path is left to `agentq bench search` on 100,000 messages.
    @Test func filteredVectorSearchesFillTheirLimit() async throws {
        try await TestDatabase.with("search_filtered") { client, _ in
            try await client.run(
                """
                SELECT agentq.create_thread('user' || u) FROM generate_series(1, 30) u
                """)
            try await client.run(
                """
                SELECT agentq.save_message(t.id, 'user', 'note ' || g) FROM agentq.threads t, generate_series(1, 100) g
                """)
            _ = try await client.scalar(
                """
                SELECT agentq.save_embeddings(jsonb_agg(jsonb_build_object('message_id', m.id, 'model', 'm:e64',
                       'embedding', (SELECT jsonb_agg(sin(hashtext(m.id::text || d) * 0.001)) FROM generate_series(1, 64) d))))
                  FROM agentq.messages m
                """, as: Int.self)
            try await client.run("ANALYZE agentq.embeddings")
            let query = "[" + (1...64).map { "\(sin(Double($0)))" }.joined(separator: ",") + "]"
            for user in ["user3", "user17", "user30"] {
                let n: Int = try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.search_messages(null, null, \(user), 10, \(query)::vector, 'm:e64')
                    """)
                #expect(n == 10, "\(user): \(n) hits")
            }
        }
    }

    @Test func aProducerSearchesOnlyItsUsersMessages() async throws {
        try await TestDatabase.with("search_rls") { owner, url in
            try await RolesTests.loginRole("agentq_test_producer", in: "agentq_producer", owner)
            let thread: UUID = try await owner.scalar("SELECT agentq.create_thread('A')")
            try await Self.add(owner, thread: thread, "secret plans of A", vector: [1, 0, 0])
            try await RolesTests.session(RolesTests.url(url, user: "agentq_test_producer"), user: "B") { (b: PostgresClient) async throws in
                #expect(try await Self.hits(b, "SELECT text FROM agentq.search_messages('secret', null, 'A')").isEmpty)
                #expect(try await Self.hits(b, "SELECT text FROM agentq.search_messages('secret', \(thread))").isEmpty)
                #expect(try await Self.hits(b, "SELECT text FROM agentq.search_messages(null, null, 'A', 5, '[1,0,0]', 'mock:e3')").isEmpty)
            }
            try await RolesTests.session(RolesTests.url(url, user: "agentq_test_producer"), user: "A") { (a: PostgresClient) async throws in
                #expect(try await Self.hits(a, "SELECT text FROM agentq.search_messages('secret', null, 'A')") == ["secret plans of A"])
            }
        }
    }
}
