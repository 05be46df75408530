import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// The psql dashboards on a known workload give the known numbers, read through indexes.
@Suite struct DashboardTests {
    @Test func viewsShowAKnownWorkload() async throws {
        try await TestDatabase.with("dash_views") { client, url in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread(user_id => 'u1', title => 'known')")
            // Four jobs on four threads, then set into known states.
            let ids = try await client.rows(
                """
                SELECT agentq.generate(agentq.create_thread(user_id => 'u1'), 'job ' || g) FROM generate_series(1, 4) g
                """, as: Int64.self)
            try await client.run(
                """
                UPDATE agentq.jobs SET status = 'succeeded', started_at = now() - interval '3 s', finished_at = now() WHERE id = \(ids[0]);
                """)
            try await client.run(
                """
                UPDATE agentq.jobs SET status = 'failed', attempt = 5, last_error = 'boom', finished_at = now() WHERE id = \(ids[1])
                """)
            try await client.run("UPDATE agentq.jobs SET run_at = now() - interval '10 s' WHERE id = \(ids[2])")
            try await client.run(
                """
                INSERT INTO agentq.worker_registry (id, host, pid, queues, concurrency) VALUES ('w1', 'box', 42, '{default}', 8)
                """)
            try await client.run(
                """
                UPDATE agentq.jobs SET status = 'running', worker = 'w1', attempt = 1, started_at = now() - interval '5 s',
                       lease_expires_at = now() + interval '20 s' WHERE id = \(ids[3])
                """)
            try await client.run(
                """
                INSERT INTO agentq.usage (user_id, thread_id, agent_name, provider, model, prompt_tokens, completion_tokens, total_tokens, raw)
                VALUES ('u1', \(thread), 'default', 'mock', 'scripted', 10, 5, 15, NULL),
                       ('u1', \(thread), 'default', 'mock', 'scripted', 0, 0, 0, '{"error": "x"}')
                """)
            let stats = try await client.rows(
                """
                SELECT status, jobs::int, coalesce(oldest_waiting_s, 0)::float8, finished_last_minute::int, failure_rate_last_hour::float8
                  FROM agentq.queue_stats WHERE queue = 'default' ORDER BY status
                """, as: (String, Int, Double, Int, Double).self)
            #expect(stats.map(\.0) == ["failed", "queued", "running", "succeeded"])
            #expect(stats.map(\.1) == [1, 1, 1, 1])
            #expect(stats[1].2 >= 10 && stats[1].2 < 60, "the queued job waited 10 s")
            #expect(stats[0].3 == 1 && stats[3].3 == 1)
            #expect(stats.allSatisfy { $0.4 == 0.5 })
            let active = try await client.rows(
                """
                SELECT id, worker, lease_left_s::float8, running_s::float8, model FROM agentq.active_jobs
                """, as: (Int64, String, Double, Double, String).self)
            #expect(active.count == 1 && active[0].0 == ids[3] && active[0].1 == "w1" && active[0].4 == "mock:scripted")
            #expect(active[0].2 > 0 && active[0].2 <= 20 && active[0].3 >= 5)
            #expect(try await client.scalar("SELECT jobs_in_hand::int FROM agentq.workers WHERE id = 'w1' AND alive") == 1)
            #expect(try await client.scalar("SELECT last_error FROM agentq.failed_jobs LIMIT 1") == "boom")
            let usage = try await client.rows(
                """
                SELECT calls::int, failed_calls::int, total_tokens::int FROM agentq.usage_daily WHERE user_id = 'u1'
                """, as: (Int, Int, Int).self)
            #expect(usage.count == 1 && usage[0] == (2, 1, 15))
            #expect(
                try await client.scalar(
                    """
                    SELECT messages::int || ' ' || tokens_last_day FROM agentq.thread_activity WHERE thread_id = \(thread)
                    """) == "0 15")
            // The live views read through indexes, not whole tables.
            for view in ["queue_stats", "active_jobs", "failed_jobs", "workers"] {
                let plan = try await client.withConnection { conn in
                    _ = try await conn.query("SET enable_seqscan = off", logger: TestDatabase.logger).collect()
                    var lines: [String] = []
                    for try await line in try await conn.query(
                        PostgresQuery(unsafeSQL: "EXPLAIN SELECT * FROM agentq.\(view)"),
                        logger: TestDatabase.logger
                    ).decode(String.self) { lines.append(line) }
                    _ = try await conn.query("RESET enable_seqscan", logger: TestDatabase.logger).collect()
                    return lines.joined(separator: "\n")
                }
                #expect(!plan.contains("Seq Scan on jobs"), "\(view):\n\(plan)")
            }
            // agentq status prints them.
            let (status, text, _) = try runAgentq(["status", "--database-url", url.libpqURL])
            #expect(status == 0)
            #expect(text.contains("queues\nqueue   | status    | jobs | blocked"))
            #expect(text.contains("w1 | box  | 42  | 8           | 1"))
            #expect(text.contains("boom"))
        }
    }

    @Test func topRedrawsTheScreenWithASparkline() async throws {
        try await TestDatabase.with("dash_top") { client, url in
            let ids = try await client.rows("SELECT agentq.generate(null, 'p' || g) FROM generate_series(1, 3) g", as: Int64.self)
            try await client.run("UPDATE agentq.jobs SET status = 'succeeded', finished_at = now() WHERE id = ANY(\(ids))")
            let (status, text, _) = try runAgentq(["top", "--database-url", url.libpqURL, "--iterations", "2", "--interval", "0.1"])
            #expect(status == 0)
            #expect(text.components(separatedBy: "\u{1B}[H\u{1B}[2J").count == 3, "two frames")
            #expect(text.contains("█  (3 in the last 5 s)"))
            #expect(text.contains("latest failures"))
        }
    }
}
