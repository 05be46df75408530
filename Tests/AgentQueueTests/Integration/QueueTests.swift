import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// The queue's SQL functions driven directly through JobStore: claim, fencing, order, retries.
@Suite struct QueueTests {
    func finished(_ job: ClaimedJob, _ text: String = "ok") -> FinishItem {
        FinishItem(
            jobID: job.id, attempt: job.attempt, outcome: .succeeded,
            result: JobResultPayload(text: text, messageIDs: [], usage: nil),
            messages: [NewMessage(text: text, model: "scripted", provider: "mock", usage: nil, finishReason: "stop", agentName: "default")])
    }

    @Test func enqueueClaimComplete() async throws {
        try await TestDatabase.with("queue_basic") { client, _ in
            let store = JobStore(client: client, workerID: "w1")
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'hi')")
            let claimed = try await store.claim(queues: ["default"], limit: 10, lease: .seconds(30), logger: TestDatabase.logger)
            #expect(claimed.map(\.id) == [job])
            #expect(claimed[0].attempt == 1)
            #expect(try await store.claim(queues: ["default"], limit: 10, lease: .seconds(30), logger: TestDatabase.logger).isEmpty)
            let applied = try await store.finish([finished(claimed[0], "hello")], logger: TestDatabase.logger)
            #expect(applied[job] == true)
            let result = try await ProducerStore(client: client).jobResult(job, logger: TestDatabase.logger)
            #expect(result.status == "succeeded" && result.text == "hello")
            #expect(try await client.scalar("SELECT ord || '/' || step FROM agentq.messages WHERE role = 'assistant'") == "0/1")
        }
    }

    @Test func theClaimUsesItsPartialIndex() async throws {
        try await TestDatabase.with("queue_plan") { client, _ in
            try await client.run(
                "INSERT INTO agentq.jobs (options) SELECT jsonb_build_object('prompt', 'p' || g) FROM generate_series(1, 2000) g")
            try await client.run("ANALYZE agentq.jobs")
            let rows = try await client.rows(
                """
                EXPLAIN WITH c AS (SELECT id FROM agentq.jobs WHERE status = 'queued' AND NOT blocked AND queue = 'default'
                                   AND run_at <= now() ORDER BY priority, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED)
                UPDATE agentq.jobs j SET status = 'running' FROM c WHERE j.id = c.id
                """, as: String.self)
            let text = rows.joined(separator: "\n")
            #expect(text.contains("jobs_claim"), "\(text)")
            #expect(!text.contains("Sort"), "\(text)")
        }
    }

    @Test func aWorkerThatLostItsLeaseCannotWrite() async throws {
        try await TestDatabase.with("queue_fencing") { client, _ in
            let old = JobStore(client: client, workerID: "old")
            let new = JobStore(client: client, workerID: "new")
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'hi')")
            let first = try await old.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
            try await client.run("UPDATE agentq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = \(job)")
            // The lease expired: the next claim takes the job back and claims it again (attempt 2).
            let second = try await new.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
            #expect(second.map(\.id) == [job] && second[0].attempt == 2)
            #expect(try await old.heartbeat(held: [(job, first[0].attempt)], lease: .seconds(30), logger: TestDatabase.logger).isEmpty)
            #expect(try await new.heartbeat(held: [(job, 1)], lease: .seconds(30), logger: TestDatabase.logger).isEmpty)  // attempt-fenced
            #expect(try await old.finish([finished(first[0], "stale")], logger: TestDatabase.logger)[job] == false)
            #expect(try await new.finish([finished(second[0], "fresh")], logger: TestDatabase.logger)[job] == true)
            #expect(try await client.scalar("SELECT string_agg(text, ',') FROM agentq.messages WHERE role = 'assistant'") == "fresh")
        }
    }

    @Test func expiredLeaseWithAttemptsUsedUpFails() async throws {
        try await TestDatabase.with("queue_lease_fail") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'hi', options => '{\"max_attempts\": 1}')")
            _ = try await store.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
            try await client.run("UPDATE agentq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = \(job)")
            #expect(try await client.scalar("SELECT agentq.take_back_expired()") == 1)
            #expect(
                try await client.scalar("SELECT status || ':' || last_error FROM agentq.jobs WHERE id = \(job)")
                    == "failed:lease expired: worker w stopped heartbeating")
        }
    }

    @Test func oneGenerationPerThreadInOrderOthersUnaffected() async throws {
        try await TestDatabase.with("queue_order") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let t1: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let t2: UUID = try await client.scalar("SELECT agentq.create_thread()")
            var t1Jobs: [Int64] = []
            for i in 0..<3 { t1Jobs.append(try await client.scalar("SELECT agentq.generate(\(t1), \("t1-\(i)"))")) }
            let t2Job: Int64 = try await client.scalar("SELECT agentq.generate(\(t2), 't2')")
            var order: [Int64] = []
            for _ in 0..<3 {
                let batch = try await store.claim(queues: ["default"], limit: 10, lease: .seconds(30), logger: TestDatabase.logger)
                #expect(batch.filter { $0.threadID == t1 }.count == 1)  // never two of one thread at once
                order += batch.filter { $0.threadID == t1 }.map(\.id)
                if order.count == 1 { #expect(batch.contains { $0.id == t2Job }) }
                _ = try await store.finish(batch.map { finished($0) }, logger: TestDatabase.logger)
            }
            #expect(order == t1Jobs)
        }
    }

    @Test func priorityAndRunAt() async throws {
        try await TestDatabase.with("queue_priority") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let low: Int64 = try await client.scalar("SELECT agentq.generate(null, 'low', options => '{\"priority\": 5}')")
            let high: Int64 = try await client.scalar("SELECT agentq.generate(null, 'high', options => '{\"priority\": -5}')")
            let later: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(null, 'later', options => jsonb_build_object('run_at', now() + interval '1 hour'))
                """)
            let claimed = try await store.claim(queues: ["default"], limit: 10, lease: .seconds(30), logger: TestDatabase.logger)
            #expect(claimed.map(\.id) == [high, low])
            #expect(!claimed.contains { $0.id == later })
        }
    }

    @Test func aCancelRequestWinsOverARetryOrRelease() async throws {
        try await TestDatabase.with("queue_cancel_retry") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let retried: Int64 = try await client.scalar("SELECT agentq.generate(null, 'a')")
            let released: Int64 = try await client.scalar("SELECT agentq.generate(null, 'b')")
            let claimed = try await store.claim(queues: ["default"], limit: 2, lease: .seconds(30), logger: TestDatabase.logger)
            #expect(try await client.scalar("SELECT agentq.cancel(\(retried))") == false)
            #expect(try await client.scalar("SELECT agentq.cancel(\(released))") == false)
            let items = claimed.map { job in
                FinishItem(jobID: job.id, attempt: job.attempt, outcome: job.id == retried ? .retry : .released, error: "503")
            }
            _ = try await store.finish(items, logger: TestDatabase.logger)
            let rows = try await client.rows("SELECT status, last_error FROM agentq.jobs ORDER BY id", as: (String, String?).self)
            #expect(rows.map(\.0) == ["cancelled", "cancelled"])
            #expect(rows.map(\.1) == ["cancelled", "cancelled"])
        }
    }

    @Test func nonGenerateJobsDoNotTakeTheThreadsTurn() async throws {
        try await TestDatabase.with("queue_kinds") { client, _ in
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let generate: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'hi')")
            let embed: Int64 = try await client.scalar("INSERT INTO agentq.jobs (kind, thread_id) VALUES ('embed', \(thread)) RETURNING id")
            let next: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'again')")
            let blocked = try await client.rows("SELECT id, blocked FROM agentq.jobs ORDER BY id", as: (Int64, Bool).self)
            #expect(blocked.map(\.0) == [generate, embed, next])
            #expect(blocked.map(\.1) == [false, false, true])
        }
    }

    @Test func aBadOutcomeInABatchIsRecordedAsAFailureAndTheRestApply() async throws {
        try await TestDatabase.with("queue_poison") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            try await client.run("SELECT agentq.generate(null, 'p' || g) FROM generate_series(1, 2) g")
            let jobs = try await store.claim(queues: ["default"], limit: 2, lease: .seconds(30), logger: TestDatabase.logger)
            var bad = NewMessage(text: "x", model: "m", provider: "mock", usage: nil, finishReason: "stop", agentName: "default")
            bad.status = "bogus"  // violates the messages status check (23514)
            let good = finished(jobs[0], "fine")
            let poison = FinishItem(
                jobID: jobs[1].id, attempt: jobs[1].attempt, outcome: .succeeded,
                result: JobResultPayload(text: "x", messageIDs: [bad.id], usage: nil), messages: [bad])
            let queue = CompletionQueue(maxBatch: 10)
            async let flusher: Void = queue.runFlusher(store: store, logger: TestDatabase.logger)
            async let a = queue.submit(good)
            async let b = queue.submit(poison)
            let (appliedGood, appliedPoison) = await (a, b)
            queue.close()
            await flusher
            #expect(appliedGood && appliedPoison)
            let rows = try await client.rows(
                "SELECT status, coalesce(last_error, '') FROM agentq.jobs ORDER BY id", as: (String, String).self)
            #expect(rows[0].0 == "succeeded")
            #expect(rows[1].0 == "failed" && rows[1].1.contains("could not save the job's outcome"))
        }
    }

    @Test func pruneUnblocksAThreadLeftWithoutAHead() async throws {
        try await TestDatabase.with("queue_sweep") { client, _ in
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'stuck')")
            try await client.run("UPDATE agentq.jobs SET blocked = true WHERE id = \(job)")  // what a lost race would leave
            let pruned: String = try await client.scalar("SELECT agentq.prune(1000)::text")
            #expect(pruned.contains("\"threads_unblocked\": 1"))
            #expect(try await client.scalar("SELECT blocked FROM agentq.jobs WHERE id = \(job)") == false)
        }
    }

    @Test func aRetryWaitsUntilItsRetryAtAndCountsTheAttempt() async throws {
        try await TestDatabase.with("queue_retry_at") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'flaky')")
            let first = try await store.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
            let retryAt = Date().addingTimeInterval(3600)
            _ = try await store.finish(
                [
                    FinishItem(
                        jobID: job, attempt: first[0].attempt, outcome: .retry, error: "503",
                        retryAt: retryAt)
                ], logger: TestDatabase.logger)
            let row = try await client.rows(
                """
                SELECT status, attempt, last_error, abs(extract(epoch FROM run_at) - \(retryAt.timeIntervalSince1970))::float8 < 0.01
                  FROM agentq.jobs WHERE id = \(job)
                """, as: (String, Int, String?, Bool).self)
            #expect(row.count == 1 && row[0].0 == "queued" && row[0].1 == 1 && row[0].2 == "503" && row[0].3)
            #expect(try await store.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger).isEmpty)
            try await client.run("UPDATE agentq.jobs SET run_at = now() WHERE id = \(job)")
            let second = try await store.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
            #expect(second.first?.attempt == 2)
        }
    }
}

extension QueueTests {
    /// A job whose lease is lost twice while the server is up (its worker crashed or hung each time)
    /// is failed as quarantined rather than handed to a third worker.
    @Test func aJobThatLosesItsLeaseTwiceIsQuarantined() async throws {
        try await TestDatabase.with("queue_quarantine") { client, _ in
            let store = JobStore(client: client, workerID: "w")
            let job: Int64 = try await client.scalar("SELECT agentq.generate(null, 'poison', options => '{\"max_attempts\": 10}')")
            for round in 1...2 {
                _ = try await store.claim(queues: ["default"], limit: 1, lease: .seconds(30), logger: TestDatabase.logger)
                try await client.run("UPDATE agentq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = \(job)")
                #expect(try await client.scalar("SELECT agentq.take_back_expired(100, interval '30 seconds')") == 1)
                let (status, lost): (String, Int) = try await client.rows(
                    "SELECT status, lost_leases FROM agentq.jobs WHERE id = \(job)", as: (String, Int).self)[0]
                #expect(lost == round)
                #expect(status == (round == 1 ? "queued" : "failed"))
            }
            let error: String = try await client.scalar("SELECT last_error FROM agentq.jobs WHERE id = \(job)")
            #expect(error.hasPrefix("quarantined: 2 workers stopped heartbeating while running it"), "\(error)")
        }
    }
}
