import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// search_messages without `model`: the thread's agent's embedding model, else the one model with
/// vectors of the query's dimension, refused (naming the candidates) when that is ambiguous or
/// there is none; and equal scores returned in one order, newest first.
extension SearchTests {
    @Test func aVectorSearchWithoutModelTakesTheOnlyModelOfItsDimension() async throws {
        try await TestDatabase.with("search_model") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let other: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            try await Self.add(client, thread: thread, "three dims of m:one", vector: [1, 0, 0], model: "m:one")
            try await Self.add(client, thread: thread, "four dims of m:four", vector: [1, 0, 0, 0], model: "m:four")
            try await Self.add(client, thread: other, "other thread, m:two", vector: [1, 0, 0], model: "m:two")
            // No agent embeds; one model of each dimension in the thread: that one.
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, \(thread), query_embedding => '[1,0,0]')")
                    == ["three dims of m:one"])
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, \(thread), query_embedding => '[0,1,0,0]')")
                    == ["four dims of m:four"])
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, \(other), query_embedding => '[1,0,0]')")
                    == ["other thread, m:two"])
            // User-wide, two models have 3-dimension vectors: ambiguous, and the error names both.
            let ambiguous = await expectError(
                client, "SELECT * FROM agentq.search_messages(null, null, 'u1', query_embedding => '[1,0,0]')", "22004")
            #expect(ambiguous.contains("'m:one', 'm:two'"), "\(ambiguous)")
            // A named model needs no guess.
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, null, 'u1', 10, '[1,0,0]', 'm:two')")
                    == ["other thread, m:two"])
            // No model has vectors of 5 dimensions and no agent embeds: refused.
            let none = await expectError(
                client, "SELECT * FROM agentq.search_messages(null, \(thread), query_embedding => '[1,0,0,0,0]')", "22004")
            #expect(none.contains("5 dimensions"), "\(none)")
        }
    }

    @Test func aVectorSearchWithoutModelPrefersTheThreadsAgentsModel() async throws {
        try await TestDatabase.with("search_agent_model") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            try await Self.add(client, thread: thread, "old model's vector", vector: [1, 0, 0], model: "m:old")
            try await Self.add(client, thread: thread, "new model's vector", vector: [1, 0, 0], model: "m:new")
            await expectError(client, "SELECT * FROM agentq.search_messages(null, \(thread), query_embedding => '[1,0,0]')", "22004")
            // The agent of the thread's newest message that names one embeds with m:new.
            try await client.run("INSERT INTO agentq.agents (name, model, embedding_model) VALUES ('helper', 'mock:scripted', 'm:new')")
            try await client.run("SELECT agentq.save_message(\(thread), 'assistant', 'a reply', agent_name => 'helper', embed => false)")
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, \(thread), query_embedding => '[1,0,0]')")
                    == ["new model's vector"])
            // User-wide, the default agent's model decides.
            await expectError(client, "SELECT * FROM agentq.search_messages(null, null, 'u1', query_embedding => '[1,0,0]')", "22004")
            try await client.run("UPDATE agentq.agents SET embedding_model = 'm:old' WHERE name = 'default'")
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, null, 'u1', query_embedding => '[1,0,0]')")
                    == ["old model's vector"])
            // An agent model without vectors of the query's dimension gives way to the one model that has them.
            try await Self.add(client, thread: thread, "two dims", vector: [1, 0], model: "m:two-dims")
            #expect(
                try await Self.hits(client, "SELECT text FROM agentq.search_messages(null, \(thread), query_embedding => '[0,1]')")
                    == ["two dims"])
        }
    }

    @Test func equalScoresComeBackNewestFirstEveryTime() async throws {
        try await TestDatabase.with("search_ties") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            // The tour's turn: the question and the mock's reply rank the same for "queue".
            try await client.run("SELECT agentq.save_message(\(thread), 'user', 'What is a queue?')")
            try await client.run(
                "SELECT agentq.save_message(\(thread), 'assistant', 'mock reply to \"What is a queue?\" (1 messages in context)')")
            // Four equal texts and vectors saved in one statement (one created_at): by ord, newest first.
            try await client.run("SELECT agentq.save_message(\(thread), 'user', 'tie number ' || n) FROM generate_series(1, 4) n")
            _ = try await client.scalar(
                """
                SELECT agentq.save_embeddings(jsonb_agg(jsonb_build_object('message_id', id, 'model', 'm:e3', 'embedding', '[1,0,0]'::jsonb)))
                  FROM agentq.messages WHERE thread_id = \(thread)
                """, as: Int.self)
            for _ in 0..<5 {
                let queue = try await client.rows(
                    "SELECT text, text_rank FROM agentq.search_messages('queue', \(thread))", as: (String, Int?).self)
                #expect(queue.map(\.0) == ["mock reply to \"What is a queue?\" (1 messages in context)", "What is a queue?"])
                #expect(queue.map(\.1) == [1, 2])
                let ties = try await client.rows(
                    "SELECT text, text_rank FROM agentq.search_messages('tie number', \(thread), lim => 4)", as: (String, Int?).self)
                #expect(ties.map(\.0) == ["tie number 4", "tie number 3", "tie number 2", "tie number 1"])
                #expect(ties.map(\.1) == [1, 2, 3, 4])
                let vector = try await client.rows(
                    "SELECT text, vector_rank FROM agentq.search_messages(null, \(thread), lim => 6, query_embedding => '[1,0,0]')",
                    as: (String, Int?).self)
                #expect(
                    vector.map(\.0) == [
                        "tie number 4", "tie number 3", "tie number 2", "tie number 1",
                        "mock reply to \"What is a queue?\" (1 messages in context)", "What is a queue?"
                    ])
                #expect(vector.map(\.1) == [1, 2, 3, 4, 5, 6])
            }
        }
    }
}
