import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Chaos: real worker processes under streaming, tool-calling load while the server restarts, the
/// network goes silent, workers are killed and the database stalls. Every trial ends with the
/// invariants of `ChaosLoad.check`: every job ends once, one success reply per prompt, no SQL tool
/// effect twice, deltas without gaps, workers alive, and new work picked up (README "Reliability").
/// They take a few minutes and load both cores, so they run in a pass of their own:
/// `scripts/test` runs them after the rest (AGENTQ_CHAOS=1), and CI runs `scripts/test`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["AGENTQ_CHAOS"] == "1"), .serialized)
struct ChaosTests {
    @Test func serverRestartsFastAndImmediateUnderLoad() async throws {
        let server = try ScratchPostgres(name: "chaos")
        defer { server.destroy() }
        try await PostgresClient.withRunning(
            server.url.clientConfiguration(applicationName: "chaos-test", statementTimeout: .seconds(30)),
            logger: TestDatabase.logger
        ) { client in
            try await Migrator(directory: ProjectLayout.locate().sqlDirectory).migrate(client, logger: TestDatabase.logger)
            let load = try await ChaosLoad(client)
            let workers = try (0..<2).map { _ in try WorkerProcess(url: server.url, arguments: ["--lease", "3", "--poll-ms", "200"]) }
            var jobs: [Int64] = []
            for trial in 0..<10 {
                let batch = try await load.enqueue(10, tag: "r\(trial)")
                jobs += batch
                try await Task.sleep(for: .milliseconds(Int.random(in: 100...700)))
                try server.restart(trial % 2 == 0 ? "fast" : "immediate", down: .milliseconds(Int.random(in: 0...1500)))
                try await load.waitUntilEnded(batch, timeout: .seconds(90), workers: workers)
            }
            try await load.check(jobs, workers: workers)
            await ChaosLoad.stop(workers)
        }
    }

    @Test func aSilentNetworkIsNoticedByDeadlinesAndWorkResumes() async throws {
        try await TestDatabase.with("chaos_silent") { client, url in
            let load = try await ChaosLoad(client)
            let proxy = try SilentProxy(upstreamPort: url.port)
            defer { proxy.stop() }
            let viaProxy = try DatabaseURL("postgresql://\(url.username)@127.0.0.1:\(proxy.port)/\(url.database)?sslmode=disable")
            let worker = try WorkerProcess(
                url: viaProxy, arguments: ["--lease", "6", "--statement-timeout", "2", "--poll-ms", "200", "--log-level", "info"])
            var jobs: [Int64] = []
            for trial in 0..<2 {
                let batch = try await load.enqueue(10, tag: "s\(trial)")
                jobs += batch
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...600)))
                proxy.goSilent()
                try await Task.sleep(for: .seconds(4))
                proxy.heal()
                try await load.waitUntilEnded(batch, timeout: .seconds(90), workers: [worker])
            }
            try await load.check(jobs, workers: [worker])
            await ChaosLoad.stop([worker])
        }
    }

    @Test func workersKilledAtRandomInstantsLoseNothing() async throws {
        try await TestDatabase.with("chaos_kill") { client, url in
            let load = try await ChaosLoad(client)
            var workers = try (0..<2).map { _ in try WorkerProcess(url: url, arguments: ["--lease", "2", "--poll-ms", "200"]) }
            var jobs: [Int64] = []
            for trial in 0..<20 {
                let batch = try await load.enqueue(6, tag: "k\(trial)")
                jobs += batch
                try await Task.sleep(for: .milliseconds(Int.random(in: 50...1500)))
                let victim = Int.random(in: 0..<workers.count)
                workers[victim].signal(SIGKILL)
                _ = await workers[victim].waitForExit()
                workers[victim] = try WorkerProcess(url: url, arguments: ["--lease", "2", "--poll-ms", "200"])
                try await load.waitUntilEnded(batch, timeout: .seconds(60), workers: workers)
            }
            try await load.check(jobs, workers: workers)
            await ChaosLoad.stop(workers)
        }
    }

    @Test func aStalledDatabaseTimesStatementsOutAndWorkResumes() async throws {
        try await TestDatabase.with("chaos_stall") { client, url in
            let load = try await ChaosLoad(client)
            let worker = try WorkerProcess(url: url, arguments: ["--lease", "6", "--statement-timeout", "1", "--poll-ms", "200"])
            let batch = try await load.enqueue(10, tag: "stall")
            try await Task.sleep(for: .milliseconds(300))
            // Every statement touching jobs waits behind this lock until its statement timeout fires.
            try await client.withTransaction(logger: TestDatabase.logger) { tx in
                _ = try await tx.query("LOCK TABLE agentq.jobs IN ACCESS EXCLUSIVE MODE", logger: TestDatabase.logger).collect()
                _ = try await tx.query("SELECT pg_sleep(3)", logger: TestDatabase.logger).collect()
            }
            try await load.waitUntilEnded(batch, timeout: .seconds(60), workers: [worker])
            try await load.check(batch, workers: [worker])
            #expect(worker.log.contains("canceling statement due to statement timeout"), "the stall was felt: \(worker.log.suffix(1500))")
            await ChaosLoad.stop([worker])
        }
    }
}

/// The mixed load of the chaos tests: streamed replies and SQL tool calls (`ToolTests.install`), each
/// prompt unique, and the invariants every trial ends with.
struct ChaosLoad {
    let client: PostgresClient
    /// The model server (kept running as long as the load).
    let mock: MockLLMProcess

    init(_ client: PostgresClient) async throws {
        self.client = client
        mock = try await MockLLMProcess()
        try await ToolTests.install(client, mock: mock)
    }

    /// `n` jobs, half streaming 12 words at 40 a second, half calling `place_order` once.
    func enqueue(_ n: Int, tag: String) async throws -> [Int64] {
        var jobs: [Int64] = []
        for i in 0..<n {
            let prompt =
                i % 2 == 0
                ? "story \(tag)-\(i) [mock words=12 tps=40]"
                : "buy \(tag)-\(i) [mock tool=place_order args='{\"item\": \"\(tag)-\(i)\"}']"
            jobs.append(
                try await retrying { try await ToolTests.generate(client, prompt, tools: ["place_order"], extra: #", "max_attempts": 20"#) }
            )
        }
        return jobs
    }

    /// Waits until every job of `jobs` ended, riding out the test's own lost connections; a failure
    /// carries the end of the workers' logs.
    func waitUntilEnded(_ jobs: [Int64], timeout: Duration, workers: [WorkerProcess] = []) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let open: Int? = try? await client.scalar(
                "SELECT count(*)::int FROM agentq.jobs WHERE id = ANY(\(jobs)) AND finished_at IS NULL")
            if open == 0 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let states = try await retrying {
            try await client.rows(
                "SELECT id, status, coalesce(last_error, '') FROM agentq.jobs WHERE id = ANY(\(jobs)) AND finished_at IS NULL",
                as: (Int64, String, String).self)
        }
        let logs = workers.map { Self.summary(of: $0.log) }.joined(separator: "\n---\n")
        throw TestFailure("jobs still open after \(timeout): \(states)\n\(logs)")
    }

    /// Stops the workers with SIGTERM: each must exit 0 within a minute (a failure shows its log).
    static func stop(_ workers: [WorkerProcess]) async {
        for worker in workers { worker.signal(SIGTERM) }
        for worker in workers {
            let status = await worker.waitForExit(timeout: .seconds(60))
            #expect(
                status == 0,
                "worker \(worker.pid) after SIGTERM: \(status.map { "exit \($0)" } ?? "still running")\n\(summary(of: worker.log))")
        }
    }

    /// A worker's log without the backtrace frames of threads that did not crash and without
    /// register dumps, so a crash's reason and place fit in a test failure.
    static func summary(of log: String) -> String {
        var kept: [Substring] = []
        var inCrashedThread = false
        for line in log.split(separator: "\n") {
            if line.hasPrefix("Thread ") { inCrashedThread = line.hasSuffix("crashed:") }
            let frame = line.first?.isWhitespace ?? true
            if inCrashedThread || !(frame || line.hasPrefix("r") || line.hasPrefix("0x")) { kept.append(line) }
        }
        return String(kept.joined(separator: "\n").suffix(8000))
    }

    /// The invariants, over `jobs` and the whole database.
    func check(_ jobs: [Int64], workers: [WorkerProcess]) async throws {
        // Every job ended, succeeded (the restarts and kills cost attempts, not outcomes).
        let ended = try await client.rows(
            "SELECT id, status, coalesce(last_error, '') FROM agentq.jobs WHERE id = ANY(\(jobs))", as: (Int64, String, String).self)
        #expect(ended.count == jobs.count)
        let unsuccessful = ended.filter { $0.1 != "succeeded" }
        if !unsuccessful.isEmpty {
            // Their streams (status, abort reason, the seqs written) and the workers' logs, to tell why.
            let streams = try await client.rows(
                """
                SELECT s.job_id || ' ' || s.status || ' ' || coalesce(s.abort_reason, '-') || ' seqs '
                       || coalesce((SELECT string_agg(seq::text, ',' ORDER BY seq) FROM agentq.stream_deltas WHERE stream_id = s.id), '')
                  FROM agentq.streams s WHERE s.job_id = ANY(\(unsuccessful.map(\.0))) ORDER BY s.job_id, s.created_at
                """, as: String.self)
            Issue.record(
                """
                jobs that did not succeed: \(unsuccessful)
                their streams: \(streams)
                \(workers.map { Self.summary(of: $0.log) }.joined(separator: "\n---\n"))
                """)
        }
        // One success reply per prompt: exactly one final assistant message per job.
        let replies = try await client.rows(
            """
            SELECT j.id, (SELECT count(*)::int FROM agentq.messages m
                           WHERE m.job_id = j.id AND m.role = 'assistant' AND NOT m.tool AND m.status = 'success')
              FROM agentq.jobs j WHERE j.id = ANY(\(jobs))
            """, as: (Int64, Int).self)
        #expect(replies.filter { $0.1 != 1 }.isEmpty, "jobs without exactly one reply: \(replies.filter { $0.1 != 1 })")
        // No SQL tool effect twice, and one for every tool job.
        let twice = try await client.rows(
            "SELECT item, count(*)::int FROM public.orders GROUP BY item HAVING count(*) > 1", as: (String, Int).self)
        #expect(twice.isEmpty, "orders placed twice: \(twice)")
        let toolJobs: Int = try await client.scalar(
            "SELECT count(*)::int FROM agentq.jobs j JOIN agentq.messages m ON m.id = j.prompt_message_id WHERE j.id = ANY(\(jobs)) AND m.text LIKE 'buy %'"
        )
        #expect(try await client.scalar("SELECT count(*)::int FROM public.orders") == toolJobs)
        // Deltas without gaps, and no stream left open.
        let gaps: Int = try await client.scalar(
            "SELECT count(*)::int FROM (SELECT stream_id FROM agentq.stream_deltas GROUP BY 1 HAVING count(*) <> max(seq) + 1) g")
        #expect(gaps == 0, "streams with gaps in their deltas")
        #expect(try await client.scalar("SELECT count(*)::int FROM agentq.streams WHERE status = 'streaming'") == 0)
        // Workers alive, and new work picked up.
        for worker in workers { #expect(worker.process.isRunning, "a worker died: \(worker.log.suffix(1500))") }
        let next = try await ToolTests.generate(client, "after the chaos", tools: [])
        try await ToolTests.waitFor(client, next, "succeeded")
    }

    /// Runs `body` again while the test's own connection is down (a restart cuts it too).
    private func retrying<T>(_ body: () async throws -> T) async throws -> T {
        var failures = 0
        while true {
            do {
                return try await body()
            } catch {
                failures += 1
                if failures > 100 { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
