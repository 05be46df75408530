import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Wake-ups and housekeeping: NOTIFY only when a worker waits, re-LISTEN after a lost connection, pruning.
@Suite struct WakeupTests {
    /// Counts notifications on agentq_jobs while `body` runs: a marker NOTIFY sent after it ends the
    /// count, as notifications arrive in the order their transactions committed.
    func notifications(_ client: PostgresClient, during body: @Sendable @escaping () async throws -> Void) async throws -> Int {
        try await client.withConnection { conn in
            try await conn.listen(on: "agentq_jobs") { events in
                try await body()
                let marker = "test-marker-\(UUID())"
                try await client.run("SELECT pg_notify('agentq_jobs', \(marker))")
                var n = 0
                for try await event in events {
                    if event.payload == marker { break }
                    n += 1
                }
                return n
            }
        }
    }

    @Test func enqueueNotifiesOnlyWhenAWorkerWaits() async throws {
        try await TestDatabase.with("wake_notify") { client, _ in
            let quiet = try await notifications(client) {
                try await client.run("SELECT agentq.generate(null, 'nobody waits')")
            }
            #expect(quiet == 0)
            try await client.run("SELECT agentq.register_worker('w', 'h', 1, '{default}', 4)")
            try await client.run("UPDATE agentq.worker_registry SET waiting = true")
            let woken = try await notifications(client) {
                try await client.run("SELECT agentq.generate(null, 'a worker waits')")
            }
            #expect(woken == 1)
            let otherQueue = try await notifications(client) {
                try await client.run("SELECT agentq.generate(null, 'other queue', options => '{\"queue\": \"batch\"}')")
            }
            #expect(otherQueue == 0)
        }
    }

    /// A waiting worker claims nothing when its slots free up; the job that a finish unblocks (the
    /// next of its thread) must wake it by NOTIFY, as an enqueue does.
    @Test func aThreadsNextJobWakesAWaitingWorker() async throws {
        try await TestDatabase.with("wake_unblocked") { client, url in
            // A poll interval of a minute: only a NOTIFY can wake this worker in time.
            let worker = try WorkerProcess(url: url, arguments: ["--poll-ms", "60000", "--concurrency", "4"])
            try await eventually(timeout: .seconds(20), "worker waiting") {
                try await client.scalar("SELECT count(*)::int FROM agentq.worker_registry WHERE waiting") == 1
            }
            try await client.run(
                """
                WITH t AS (SELECT agentq.create_thread('u') AS id)
                SELECT agentq.generate(t.id, 'turn ' || g) FROM t, generate_series(1, 3) g
                """)
            try await eventually(timeout: .seconds(20), "the thread's three jobs done one after another") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded'") == 3
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    /// The worker keeps agents in memory; changing one must reach the very next job (the mock counts
    /// the instructions' words in the prompt tokens it reports).
    @Test func anAgentChangeReachesTheNextJob() async throws {
        try await TestDatabase.with("wake_catalog") { client, url in
            try await client.run(
                "INSERT INTO agentq.agents (name, model, instructions) SELECT 'cached', model, 'one' FROM agentq.agents WHERE name = 'default'"
            )
            // No fallback poll: only the enqueue's NOTIFY wakes the worker, and it comes after the
            // catalog's on the same connection.
            let worker = try WorkerProcess(url: url, arguments: ["--concurrency", "2", "--poll-ms", "60000"])
            func promptTokens(_ prompt: String) async throws -> Int {
                let job: Int64 = try await client.scalar("SELECT agentq.generate(null, \(prompt), 'cached')")
                try await eventually(timeout: .seconds(20), "job \(job) done") {
                    try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE id = \(job) AND status = 'succeeded'") == 1
                }
                return try await client.scalar("SELECT prompt_tokens FROM agentq.usage WHERE job_id = \(job)")
            }
            let before = try await promptTokens("same words")
            #expect(try await promptTokens("same words") == before)  // read from the cache
            try await client.run("UPDATE agentq.agents SET instructions = 'one two three four five' WHERE name = 'cached'")
            #expect(try await promptTokens("same words") == before + 4)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func aWorkerListensAgainAfterItsConnectionIsKilled() async throws {
        try await TestDatabase.with("wake_relisten") { client, url in
            // A poll interval of a minute: only a NOTIFY can wake this worker in time.
            let worker = try WorkerProcess(url: url, arguments: ["--poll-ms", "60000", "--log-level", "info"])
            try await eventually(timeout: .seconds(20), "worker waiting") {
                try await client.scalar("SELECT count(*)::int FROM agentq.worker_registry WHERE waiting") == 1
            }
            let killed: Int = try await client.scalar(
                """
                SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND (query ILIKE 'LISTEN%agentq_jobs%' OR query LIKE '%ping of the LISTEN agentq_jobs connection%')
                """)
            #expect(killed == 1)
            do {
                try await eventually(timeout: .seconds(20), "listener back") {
                    try await client.scalar(
                        """
                        SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND (query ILIKE 'LISTEN%agentq_jobs%' OR query LIKE '%ping of the LISTEN agentq_jobs%')
                        """) == 1
                }
            } catch {
                let sessions = try await client.rows(
                    "SELECT coalesce(application_name, '') || ': ' || state || ': ' || left(query, 80) FROM pg_stat_activity WHERE datname = current_database()",
                    as: String.self)
                Issue.record("sessions: \(sessions)\nworker log: \(ChaosLoad.summary(of: worker.log))")
                throw error
            }
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'wake up')")
            try await eventually(timeout: .seconds(10), "job done by a NOTIFY wake-up") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded"
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func pruneDeletesFinishedJobsPastRetention() async throws {
        try await TestDatabase.with("wake_prune") { client, _ in
            let old: Int64 = try await client.scalar("SELECT agentq.generate(null, 'old')")
            let fresh: Int64 = try await client.scalar("SELECT agentq.generate(null, 'fresh')")
            let waiting: Int64 = try await client.scalar("SELECT agentq.generate(null, 'waiting')")
            try await client.run(
                """
                UPDATE agentq.jobs SET status = 'succeeded', finished_at = now() - interval '8 days' WHERE id = \(old)
                """)
            try await client.run("UPDATE agentq.jobs SET status = 'succeeded', finished_at = now() WHERE id = \(fresh)")
            let pruned: String = try await client.scalar("SELECT agentq.prune(1000)::text")
            #expect(pruned.contains("\"jobs\": 1"))
            let left = try await client.rows("SELECT id FROM agentq.jobs ORDER BY id", as: Int64.self)
            #expect(left == [fresh, waiting])
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.messages") == 3)  // messages stay
        }
    }
}
