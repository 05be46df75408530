import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Real `agentq worker` processes against a real database: throughput correctness, crashes, signals.
@Suite struct WorkerProcessTests {
    @Test func fourWorkersRunTwoThousandJobsExactlyOnce() async throws {
        try await TestDatabase.with("proc_exactly_once") { client, url in
            try await client.run(
                """
                SELECT agentq.generate(agentq.create_thread('u' || (g % 50)), 'job ' || g) FROM generate_series(1, 2000) g
                """)
            let workers = try (0..<4).map { _ in try WorkerProcess(url: url, arguments: ["--concurrency", "16"]) }
            try await eventually(timeout: .seconds(120), "2000 jobs done") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded'") == 2000
            }
            for w in workers { w.signal(SIGTERM) }
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE attempt <> 1") == 0)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM (SELECT job_id FROM agentq.messages WHERE role = 'assistant' GROUP BY job_id HAVING count(*) <> 1) d
                    """) == 0)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.messages WHERE role = 'assistant'") == 2000)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.usage") == 2000)
            #expect(try await client.scalar("SELECT count(DISTINCT worker)::int FROM agentq.jobs") == 0)  // cleared on finish
            for w in workers { #expect(await w.waitForExit() == 0, "\(w.log)") }
        }
    }

    @Test func aKilledWorkersJobsAreTakenBackAndFinishedOnce() async throws {
        try await TestDatabase.with("proc_kill9") { client, url in
            try await client.run("SELECT agentq.generate(null, '[mock delay_ms=400] job ' || g) FROM generate_series(1, 40) g")
            let doomed = try WorkerProcess(url: url, arguments: ["--concurrency", "8", "--lease", "2"])
            try await eventually(timeout: .seconds(30), "jobs running") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'running'") >= 8
            }
            doomed.signal(SIGKILL)
            _ = await doomed.waitForExit()
            // A COMMIT the worker sent just before it died still lands: wait for its sessions to end.
            try await eventually(timeout: .seconds(30), "the killed worker's sessions gone") {
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM pg_stat_activity
                    WHERE datname = current_database() AND application_name LIKE 'agentq-worker%'
                    """) == 0
            }
            let inFlight: [Int64] = try await client.rows("SELECT id FROM agentq.jobs WHERE status = 'running'", as: Int64.self)
            #expect(!inFlight.isEmpty)
            let rescuer = try WorkerProcess(url: url, arguments: ["--concurrency", "8"])
            try await eventually(timeout: .seconds(60), "all jobs done") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded'") == 40
            }
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.messages WHERE role = 'assistant' AND status = 'success'
                    """) == 40)
            #expect(try await client.scalar("SELECT min(attempt)::int FROM agentq.jobs WHERE id = ANY(\(inFlight))") == 2)
            rescuer.signal(SIGTERM)
            #expect(await rescuer.waitForExit() == 0)
        }
    }

    @Test func retriesWithBackoffThenSucceedOrFailAtOnce() async throws {
        try await TestDatabase.with("proc_retry") { client, url in
            let flaky: Int64 = try await client.scalar("SELECT agentq.generate(null, '[mock fail=2 reply=\"finally\"] go')")
            let broken: Int64 = try await client.scalar("SELECT agentq.generate(null, '[mock fail=permanent] go')")
            let hopeless: Int64 = try await client.scalar(
                "SELECT agentq.generate(null, '[mock fail=9] go', options => '{\"max_attempts\": 3}')")
            let worker = try WorkerProcess(url: url, arguments: ["--retry-base-ms", "200"])
            try await eventually(timeout: .seconds(30), "jobs final") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE finished_at IS NOT NULL") == 3
            }
            let producer = ProducerStore(client: client)
            let ok = try await producer.jobResult(flaky, logger: TestDatabase.logger)
            #expect(ok.status == "succeeded" && ok.text == "finally")
            #expect(try await client.scalar("SELECT attempt FROM agentq.jobs WHERE id = \(flaky)") == 3)
            let bad = try await producer.jobResult(broken, logger: TestDatabase.logger)
            #expect(bad.status == "failed" && bad.error?.contains("permanent") == true)
            #expect(try await client.scalar("SELECT attempt FROM agentq.jobs WHERE id = \(broken)") == 1)
            let gaveUp = try await producer.jobResult(hopeless, logger: TestDatabase.logger)
            #expect(gaveUp.status == "failed" && gaveUp.error?.contains("attempt 3") == true)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func cancelQueuedAndRunningJobs() async throws {
        try await TestDatabase.with("proc_cancel") { client, url in
            let running: Int64 = try await client.scalar("SELECT agentq.generate(null, '[mock delay_ms=30000] slow')")
            let worker = try WorkerProcess(url: url)
            try await eventually(timeout: .seconds(20), "job running") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(running)") == "running"
            }
            let thread: UUID = try await client.scalar("SELECT thread_id FROM agentq.jobs WHERE id = \(running)")
            let queued: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'behind it')")
            #expect(try await client.scalar("SELECT agentq.cancel(\(queued))") == true)
            #expect(try await client.scalar("SELECT agentq.cancel(\(running))") == false)
            try await eventually(timeout: .seconds(10), "running job cancelled") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(running)") == "cancelled"
            }
            #expect(try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(queued)") == "cancelled")
            // The thread is free again: a new generation runs.
            let next: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'next')")
            try await eventually(timeout: .seconds(20), "next job done") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(next)") == "succeeded"
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func gracefulShutdownFinishesInFlightJobsAndHandsTheRestBack() async throws {
        try await TestDatabase.with("proc_graceful") { client, url in
            // Jobs long enough that the first two are still running when the check sees them, even on a
            // loaded machine (with shorter ones the check could see the second pair).
            try await client.run("SELECT agentq.generate(null, '[mock delay_ms=3000] short ' || g) FROM generate_series(1, 4) g")
            let worker = try WorkerProcess(url: url, arguments: ["--concurrency", "2", "--grace", "10"])
            try await eventually(timeout: .seconds(20), "two running") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'running'") == 2
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: .seconds(20)) == 0, "\(worker.log)")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded'") == 2)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'queued'") == 2)

            // Past the grace period, running jobs go back to the queue with their attempt not counted.
            try await client.run("DELETE FROM agentq.jobs WHERE status = 'queued'")
            try await client.run("SELECT agentq.generate(null, '[mock delay_ms=60000] long ' || g) FROM generate_series(1, 2) g")
            let impatient = try WorkerProcess(url: url, arguments: ["--concurrency", "2", "--grace", "0.5"])
            try await eventually(timeout: .seconds(20), "two running") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'running'") == 2
            }
            impatient.signal(SIGINT)
            #expect(await impatient.waitForExit(timeout: .seconds(20)) == 0, "\(impatient.log)")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'queued' AND attempt = 0") == 2)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.worker_registry") == 0)
        }
    }

    @Test func eventsArriveInOrderOnTheThreadChannel() async throws {
        try await TestDatabase.with("proc_events") { client, url in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let channel: String = try await client.scalar("SELECT agentq.thread_channel(\(thread))")
            let worker = try WorkerProcess(url: url)
            let types = try await client.withConnection { conn in
                return try await conn.listen(on: channel) { events in
                    _ = try await conn.query("SELECT agentq.listen(\(thread))", logger: TestDatabase.logger).collect()
                    _ = try await client.query("SELECT agentq.generate(\(thread), 'hello')", logger: TestDatabase.logger).collect()
                    var seen: [String] = []
                    for try await note in events {
                        guard let e = ThreadEvent.parse(note.payload) else { continue }
                        seen.append(e.type)
                        if e.isJobFinal { break }
                    }
                    return seen
                }
            }
            // The prompt, the job's start, the pending reply and its stream, the last delta with the
            // final message and the stream's end in one transaction, then the job's end. (The short
            // reply is one delta, or two when a tick falls between its chunks on a loaded machine.)
            let collapsed = types.enumerated().filter {
                $0.offset == 0 || !($0.element == "stream.delta" && types[$0.offset - 1] == "stream.delta")
            }
            .map(\.element)
            #expect(
                collapsed == [
                    "message.created", "job.queued", "job.running", "message.created", "stream.started",
                    "stream.delta", "message.updated", "stream.finished", "job.succeeded"
                ])
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }
}

extension WorkerProcessTests {
    @Test func aJobPastItsTimeBudgetIsStoppedAndRetried() async throws {
        try await TestDatabase.with("proc_timeout") { client, url in
            let job: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(null, '[mock delay_ms=60000] stuck', options => '{"timeout_ms": 300, "max_attempts": 2}')
                """)
            let worker = try WorkerProcess(url: url, arguments: ["--retry-base-ms", "50"])
            try await eventually(timeout: .seconds(20), "job failed after two timed-out attempts") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "failed"
            }
            #expect(try await client.scalar("SELECT last_error FROM agentq.jobs WHERE id = \(job)") == "job timed out after 0.3 seconds")
            #expect(try await client.scalar("SELECT attempt FROM agentq.jobs WHERE id = \(job)") == 2)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }
}

extension WorkerProcessTests {
    /// The budget follows the settings' precedence (job, thread, agent): a thread's
    /// `agent_options.timeout_ms` bounds its jobs, and a job's own `timeout_ms` wins over it.
    @Test func aThreadsTimeoutBoundsItsJobsUnlessTheJobNamesItsOwn() async throws {
        try await TestDatabase.with("proc_thread_timeout") { client, url in
            let thread: UUID = try await client.scalar(
                """
                SELECT agentq.create_thread(user_id => 'u1', metadata => '{"agent_options": {"timeout_ms": 300}}')
                """)
            let bounded: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(\(thread), '[mock delay_ms=60000] stuck', options => '{"max_attempts": 1}')
                """)
            let worker = try WorkerProcess(url: url, arguments: ["--retry-base-ms", "50"])
            try await eventually(timeout: .seconds(20), "the thread's budget stopped the job") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(bounded)") == "failed"
            }
            #expect(
                try await client.scalar("SELECT last_error FROM agentq.jobs WHERE id = \(bounded)") == "job timed out after 0.3 seconds")
            let own: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(\(thread), '[mock delay_ms=800] slow', options => '{"max_attempts": 1, "timeout_ms": 30000}')
                """)
            try await eventually(timeout: .seconds(20), "the job's own budget let it finish") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(own)") == "succeeded"
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }
}

extension WorkerProcessTests {
    @Test func aJobWhoseContextCannotBeLoadedIsRetriedThenFailsNotLooped() async throws {
        try await TestDatabase.with("proc_context_fault") { client, url in
            try await client.run("ALTER FUNCTION agentq.job_contexts(bigint[], int) RENAME TO job_contexts_gone")
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'hi', options => '{\"max_attempts\": 3}')")
            let worker = try WorkerProcess(url: url, arguments: ["--retry-base-ms", "50"])
            try await eventually(timeout: .seconds(20), "job failed") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "failed"
            }
            #expect(try await client.scalar("SELECT attempt FROM agentq.jobs WHERE id = \(job)") == 3)
            let error: String = try await client.scalar("SELECT last_error FROM agentq.jobs WHERE id = \(job)")
            #expect(error.contains("could not load the job's context"))
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }
}
