import AgentQueue
import Foundation
import PostgresNIO
import Testing

@Suite struct SQLAPITests {
    @Test func badInputRaisesDocumentedErrorsAndEnqueuesNothing() async throws {
        try await TestDatabase.with("sql_bad_input") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let unknown = UUID()
            #expect(await expectError(client, "SELECT agentq.generate(\(unknown), 'hi')", "P0002").contains("unknown thread"))
            #expect(
                await expectError(client, "SELECT agentq.generate(\(thread), 'hi', 'nobody')", "42704").contains("unknown agent \"nobody\"")
            )
            #expect(
                await expectError(client, "SELECT agentq.generate(\(thread), 'hi', options => '{\"priorty\": 1}')", "22023").contains(
                    "unknown option \"priorty\""))
            #expect(
                await expectError(client, "SELECT agentq.generate(\(thread), 'hi', options => '{\"max_attempts\": \"x\"}')", "22023")
                    .contains("must be an integer"))
            #expect(await expectError(client, "SELECT agentq.generate(\(thread), 'hi', options => '[1]')", "22023").contains("JSON object"))
            #expect(
                await expectError(client, "SELECT agentq.generate(\(thread), 'hi', options => '{\"run_at\": \"soon\"}')", "22023").contains(
                    "timestamp"))
            #expect(await expectError(client, "SELECT agentq.generate(\(thread), repeat('x', 100001))", "54000").contains("over the limit"))
            #expect(await expectError(client, "SELECT agentq.generate(\(thread), null)", "22023").contains("no messages"))
            #expect(await expectError(client, "SELECT agentq.save_message(\(thread), 'robot', 'x')", "22023").contains("role"))
            #expect(await expectError(client, "SELECT agentq.update_thread(\(thread), status => 'gone')", "22023").contains("status"))
            #expect(await expectError(client, "SELECT agentq.cancel(424242)", "P0002").contains("unknown job"))
            #expect(await expectError(client, "SELECT agentq.job_result(424242)", "P0002").contains("unknown job"))
            #expect(
                await expectError(client, "SELECT agentq.generate_object(\(thread), 'hi', '\"nope\"')", "22023").contains("JSON Schema"))
            #expect(await expectError(client, "SELECT agentq.cancel(null)", "22004").contains("job_id must not be null"))
            #expect(await expectError(client, "SELECT agentq.job_result(null)", "22004").contains("must not be null"))
            #expect(await expectError(client, "SELECT agentq.delete_thread(null)", "22004").contains("must not be null"))
            #expect(await expectError(client, "SELECT agentq.update_thread(null)", "22004").contains("must not be null"))
            #expect(await expectError(client, "SELECT agentq.save_message(\(thread), null, 'x')", "22004").contains("role"))
            #expect(await expectError(client, "SELECT agentq.generate_object(\(thread), 'x', null)", "22004").contains("schema"))
            #expect(
                await expectError(client, "SELECT agentq.generate(\(thread), 'hi', options => '{\"max_steps\": 1e10}')", "22023").contains(
                    "between 1 and 100"))
            #expect(
                await expectError(client, "SELECT agentq.generate(\(thread), 'hi', options => '{\"priority\": 1e30}')", "22023").contains(
                    "between"))
            #expect(
                await expectError(client, "SELECT agentq.generate(\(thread), 'hi', options => '{\"timeout_ms\": 1e30}')", "22023").contains(
                    "a day"))
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs") == 0)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.messages") == 0)
        }
    }

    @Test func cancelOfFinishedOrCancelledJobsIsRefused() async throws {
        try await TestDatabase.with("sql_cancel") { client, _ in
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'hi')")
            #expect(try await client.scalar("SELECT agentq.cancel(\(job))") == true)
            #expect(try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "cancelled")
            #expect(await expectError(client, "SELECT agentq.cancel(\(job))", "55000").contains("already cancelled"))
            let done: Int64 = try await client.scalar("SELECT agentq.generate(null, 'hi')")
            try await client.run("UPDATE agentq.jobs SET status = 'succeeded', finished_at = now() WHERE id = \(done)")
            #expect(await expectError(client, "SELECT agentq.cancel(\(done))", "55000").contains("already succeeded"))
        }
    }

    @Test func generateSavesThePromptAndPlainInsertDoesTheSame() async throws {
        try await TestDatabase.with("sql_generate") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('alice', 'Trip')")
            let a: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'first', options => '{\"priority\": 3}')")
            let b: Int64 = try await client.scalar(
                """
                INSERT INTO agentq.jobs (thread_id, options) VALUES (\(thread), '{"prompt": "second"}') RETURNING id
                """)
            let rows = try await client.rows(
                """
                SELECT j.priority, j.blocked, j.user_id, m.text, m.ord, m.step, m.role
                  FROM agentq.jobs j JOIN agentq.messages m ON m.id = j.prompt_message_id ORDER BY j.id
                """, as: (Int, Bool, String?, String?, Int, Int, String).self)
            #expect(rows.count == 2)
            let described = rows.map { "\($0.0) \($0.1) \($0.2 ?? "-") \($0.3 ?? "-") \($0.4)/\($0.5) \($0.6)" }
            #expect(
                described == [
                    "3 false alice first 0/0 user",
                    "0 true alice second 1/0 user"
                ])  // the second is blocked behind the thread's head
            #expect(a < b)
            // null thread creates one; an idempotency key returns the same job and saves nothing more.
            let k1: Int64 = try await client.scalar("SELECT agentq.generate(null, 'x', options => '{\"idempotency_key\": \"k\"}')")
            let k2: Int64 = try await client.scalar("SELECT agentq.generate(null, 'x', options => '{\"idempotency_key\": \"k\"}')")
            #expect(k1 == k2)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.messages WHERE text = 'x'") == 1)
        }
    }

    @Test func threadsAndMessagesPageByWholeTurns() async throws {
        try await TestDatabase.with("sql_threads") { client, _ in
            let t: UUID = try await client.scalar("SELECT agentq.create_thread('bob', 'one')")
            for i in 0..<3 {
                try await client.run("SELECT agentq.save_message(\(t), 'user', \("q\(i)"))")
                try await client.run("SELECT agentq.save_message(\(t), 'assistant', \("a\(i)"))")
                try await client.run("SELECT agentq.save_message(\(t), 'assistant', \("b\(i)"))")
            }
            let page = try await client.rows("SELECT text, ord FROM agentq.list_messages(\(t), 4)", as: (String, Int).self)
            #expect(page.map(\.0) == ["b2", "a2", "q2", "b1", "a1", "q1"])  // lim 4 reaches into ord 1: the whole turn comes
            let next = try await client.rows("SELECT text FROM agentq.list_messages(\(t), 4, before_ord => 1)", as: String.self)
            #expect(next == ["b0", "a0", "q0"])
            let updated: String = try await client.scalar("SELECT (agentq.update_thread(\(t), title => 'renamed')).title")
            #expect(updated == "renamed")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.list_threads('bob')") == 1)
            let job: Int64 = try await client.scalar("SELECT agentq.generate(\(t), 'more')")
            try await client.run("SELECT agentq.delete_thread(\(t))")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.messages") == 0)
            #expect(try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "cancelled")
        }
    }
}
