import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// The operators' functions: pause and resume, requeue, cancel by thread or user, purge.
@Suite struct AdminTests {
    func claim(_ client: PostgresClient, _ worker: String = "w") async throws -> [Int64] {
        try await client.rows("SELECT id FROM agentq.claim(\(worker), '{default}', 10, '30 seconds')", as: Int64.self)
    }

    @Test func aPausedQueueIsNotClaimedUntilResumed() async throws {
        try await TestDatabase.with("admin_pause") { client, _ in
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'wait for me')")
            #expect(try await client.scalar("SELECT agentq.pause_queue('default', 'maintenance')") == true)
            #expect(try await client.scalar("SELECT agentq.pause_queue('default')") == false)
            #expect(try await claim(client).isEmpty)
            #expect(try await client.scalar("SELECT agentq.resume_queue('default')") == true)
            #expect(try await client.scalar("SELECT agentq.resume_queue('default')") == false)
            #expect(try await claim(client) == [job])
            await expectError(client, "SELECT agentq.pause_queue(NULL)", "22004")
        }
    }

    @Test func failedJobsAreRequeuedBehindTheirThreadsHead() async throws {
        try await TestDatabase.with("admin_requeue") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1')")
            let first: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'one')")
            let second: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'two')")
            #expect(try await claim(client) == [first])
            try await client.run(
                """
                SELECT * FROM agentq.finish_jobs('w', jsonb_build_array(jsonb_build_object(
                    'job_id', \(first), 'attempt', 1, 'outcome', 'failed', 'error', 'provider down')))
                """)
            #expect(try await claim(client) == [second])  // the next job of the thread runs
            #expect(try await client.scalar("SELECT agentq.requeue_failed(\(first))") == true)
            let (status, blocked, attempt): (String, Bool, Int) = try await client.rows(
                "SELECT status, blocked, attempt FROM agentq.jobs WHERE id = \(first)", as: (String, Bool, Int).self
            ).first!
            #expect(status == "queued" && blocked && attempt == 0, "behind the running job of its thread")
            await expectError(client, "SELECT agentq.requeue_failed(\(first))", "55000")
            await expectError(client, "SELECT agentq.requeue_failed(999999)", "P0002")
            // By filter: only the matching failures.
            let more = try await client.rows("SELECT agentq.generate(null, 'x' || g) FROM generate_series(1, 3) g", as: Int64.self)
            try await client.run(
                """
                UPDATE agentq.jobs SET status = 'failed', last_error = 'HTTP 500', finished_at = now() WHERE id = ANY(\(more))
                """)
            try await client.run("UPDATE agentq.jobs SET last_error = 'bad schema' WHERE id = \(more[2])")
            #expect(try await client.scalar("SELECT agentq.requeue_failed_jobs(error_like => 'HTTP 5%')") == 2)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'failed'") == 1)
        }
    }

    @Test func cancelByThreadAndByUser() async throws {
        try await TestDatabase.with("admin_cancel") { client, _ in
            let mine: UUID = try await client.scalar("SELECT agentq.create_thread('alice')")
            let also: UUID = try await client.scalar("SELECT agentq.create_thread('alice')")
            let other: UUID = try await client.scalar("SELECT agentq.create_thread('bob')")
            for t in [mine, mine, also, other] { try await client.run("SELECT agentq.generate(\(t), 'hello')") }
            let running = try await claim(client)
            #expect(running.count == 3)  // the heads of the three threads
            #expect(try await client.scalar("SELECT agentq.cancel_thread_jobs(\(mine))") == 2)
            #expect(
                try await client.scalar(
                    """
                    SELECT string_agg(status || '/' || cancel_requested, ',' ORDER BY id) FROM agentq.jobs WHERE thread_id = \(mine)
                    """) == "running/true,cancelled/false")
            #expect(try await client.scalar("SELECT agentq.cancel_user_jobs('alice')") == 1)  // `also`; `mine` is done already
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.jobs WHERE thread_id = \(other) AND status = 'running' AND NOT cancel_requested
                    """) == 1)
            await expectError(client, "SELECT agentq.cancel_thread_jobs(\(UUID()))", "P0002")
        }
    }

    @Test func purgeDeletesFinishedDataOlderThanADate() async throws {
        try await TestDatabase.with("admin_purge") { client, _ in
            try await client.run("SELECT agentq.generate(null, 'p' || g) FROM generate_series(1, 3) g")
            try await client.run(
                """
                UPDATE agentq.jobs SET status = 'succeeded', finished_at = now() - interval '10 days' WHERE id <= 2
                """)
            try await client.run(
                """
                INSERT INTO agentq.usage (provider, model, prompt_tokens, completion_tokens, total_tokens, at)
                VALUES ('mock', 'scripted', 1, 1, 2, now() - interval '10 days')
                """)
            let kept: String = try await client.scalar("SELECT agentq.purge(now() - interval '1 day')::text")
            #expect(kept.contains("\"jobs\": 2") && kept.contains("\"usage\": 0"))
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs") == 1)
            let all: String = try await client.scalar("SELECT agentq.purge(now() - interval '1 day', include_usage => true)::text")
            #expect(all.contains("\"usage\": 1"))
            await expectError(client, "SELECT agentq.purge(now() + interval '1 day')", "22023")
        }
    }
}
