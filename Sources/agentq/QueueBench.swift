import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// `agentq bench queue`: drain throughput with 1, 2 and 4 worker processes, enqueue throughput from
/// concurrent SQL clients, pgbench simple-update on the same server as the commit-rate limit, and the
/// idle enqueue-to-succeeded latency. Uses its own database (`agentq_bench`), recreated each run.
struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Measure queue throughput and latency (generate jobs, instant mock model).")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Jobs pre-enqueued for each drain.") var jobs = 20_000
    @Option(help: "Threads the jobs are spread over.") var threads = 2_000
    @Option(help: "Worker process counts to drain with, comma-separated.") var workers = "1,2,4"
    @Option(help: "Concurrency of each worker process.") var concurrency = 200
    @Option(help: "Concurrent SQL clients calling agentq.generate.") var enqueueClients = 8
    @Option(help: "Seconds of the enqueue and pgbench runs.") var seconds = 10
    @Option(help: "Samples of the idle latency run.") var latencySamples = 200
    @Option(help: "Transactions per pgbench client (8 clients).") var pgbenchTransactions = 4000
    @Option(help: "Where to write the JSON figures.") var json = "bench-results/queue.json"

    func run() async throws {
        let logger = try database.makeLogger()
        do {
            let server = try database.resolve()
            let url = try await BenchSupport.freshDatabase("agentq_bench", server: server, logger: logger)
            let layout = try ProjectLayout.locate()
            var figures: [String: JSONValue] = [
                "jobs": .number(Double(jobs)), "threads": .number(Double(threads)),
                "worker_concurrency": .number(Double(concurrency))
            ]
            let counts = workers.split(separator: ",").compactMap { Int($0) }
            for n in counts {
                let rate = try await drain(url: url, workers: n, streaming: true, logger: logger)
                figures["drain_\(n)_workers_jobs_per_s"] = .number(rate.rounded())
                say(
                    String(
                        format: "drain %d worker%@          %8.0f jobs/s  (%d jobs, %d threads)", n, n == 1 ? " " : "s", rate, jobs, threads
                    ))
            }
            let unstreamed = try await drain(url: url, workers: 2, streaming: false, logger: logger)
            figures["drain_2_workers_stream_off_jobs_per_s"] = .number(unstreamed.rounded())
            say(String(format: "drain 2 workers, stream off %6.0f jobs/s  (options.stream.enabled = false)", unstreamed))
            let enqueue = try await enqueueRate(url: url, logger: logger)
            figures["enqueue_prompts_per_s"] = .number(enqueue.rounded())
            say(String(format: "enqueue (%d SQL clients)   %8.0f prompts/s", enqueueClients, enqueue))
            let latency = try await idleLatency(url: url, logger: logger)
            figures["idle_latency_p50_ms"] = .number((latency.p50 * 10).rounded() / 10)
            figures["idle_latency_p99_ms"] = .number((latency.p99 * 10).rounded() / 10)
            say(
                String(
                    format: "idle latency enqueue→job.succeeded  p50 %.1f ms  p99 %.1f ms  (%d samples)", latency.p50, latency.p99,
                    latencySamples))
            let pgbench = try await pgbenchRate(server: server, layout: layout, logger: logger)
            figures["pgbench_simple_update_tps"] = .number(pgbench.rounded())
            say(String(format: "pgbench simple-update     %8.0f tps (8 clients, sync commit)", pgbench))
            for n in counts {
                if case .number(let r)? = figures["drain_\(n)_workers_jobs_per_s"] {
                    figures["ratio_drain_\(n)_to_pgbench"] = .number((r / pgbench * 100).rounded() / 100)
                    say(String(format: "ratio drain(%d) / pgbench   %8.2f", n, r / pgbench))
                }
            }
            figures["ratio_enqueue_to_pgbench"] = .number((enqueue / pgbench * 100).rounded() / 100)
            try BenchSupport.write(figures, to: json)
        } catch {
            fail(describeDatabaseError(error))
        }
    }

    /// Pre-enqueues the jobs, then drains them with `workers` processes; jobs/s from first start to last finish.
    private func drain(url: DatabaseURL, workers: Int, streaming: Bool, logger: Logger) async throws -> Double {
        let extra: JSONValue = streaming ? .object([:]) : .object(["stream": .object(["enabled": .bool(false)])])
        try await withClient(url, statementTimeout: nil, logger: logger) { [jobs, threads] client in
            _ = try await client.query(
                "TRUNCATE agentq.jobs, agentq.messages, agentq.threads, agentq.usage, agentq.streams, agentq.worker_registry RESTART IDENTITY CASCADE",
                logger: logger
            ).collect()
            _ = try await client.query(
                """
                INSERT INTO agentq.threads (user_id) SELECT 'bench-' || g FROM generate_series(1, \(threads)) g
                """, logger: logger
            ).collect()
            _ = try await client.query(
                """
                INSERT INTO agentq.jobs (thread_id, options)
                SELECT t.id, jsonb_build_object('prompt', 'bench prompt ' || g) || \(extra.jsonString)::jsonb
                  FROM generate_series(1, \(jobs)) g
                  JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM agentq.threads) t ON t.n = g % \(threads)
                """, logger: logger
            ).collect()
            _ = try await client.query("VACUUM ANALYZE agentq.jobs", logger: logger).collect()
            _ = try await client.query("VACUUM ANALYZE agentq.messages", logger: logger).collect()
        }
        let processes = try (0..<workers).map { _ in try BenchSupport.spawnWorker(url: url, concurrency: concurrency) }
        defer { for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        return try await withClient(url, statementTimeout: nil, logger: logger) { [jobs] client in
            while true {
                let done = try await scalar(
                    client, "SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded'", as: Int.self, logger: logger)
                if done >= jobs { break }
                let failed = try await scalar(
                    client, "SELECT count(*)::int FROM agentq.jobs WHERE status = 'failed'", as: Int.self, logger: logger)
                if failed > 0 { throw AgentQueueError(.jobFailed, "\(failed) bench jobs failed") }
                try await Task.sleep(for: .milliseconds(100))
            }
            for p in processes { kill(p.processIdentifier, SIGTERM) }
            for p in processes { p.waitUntilExit() }
            return try await scalar(
                client,
                """
                SELECT count(*) / extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM agentq.jobs
                """, as: Double.self, logger: logger)
        }
    }

    /// `enqueueClients` clients call agentq.generate on random threads for `seconds`; prompts/s.
    private func enqueueRate(url: DatabaseURL, logger: Logger) async throws -> Double {
        try await withClient(url, statementTimeout: nil, maximumConnections: enqueueClients, logger: logger) {
            [enqueueClients, seconds] client in
            _ = try await client.query("TRUNCATE agentq.jobs, agentq.worker_registry RESTART IDENTITY CASCADE", logger: logger).collect()
            let threadIDs = try await client.query("SELECT id FROM agentq.threads", logger: logger).decode(UUID.self).reduce(into: [UUID]())
            { $0.append($1) }
            let deadline = ContinuousClock.now + .seconds(seconds)
            let total = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<enqueueClients {
                    group.addTask {
                        var n = 0
                        while ContinuousClock.now < deadline {
                            let thread = threadIDs.randomElement()
                            _ = try await client.query("SELECT agentq.generate(\(thread), 'enqueue bench')", logger: logger).collect()
                            n += 1
                        }
                        return n
                    }
                }
                return try await group.reduce(0, +)
            }
            return Double(total) / Double(seconds)
        }
    }

    /// One idle worker; each sample enqueues one prompt and waits for its job.succeeded NOTIFY.
    private func idleLatency(url: DatabaseURL, logger: Logger) async throws -> (p50: Double, p99: Double) {
        let worker = try BenchSupport.spawnWorker(url: url, concurrency: concurrency)
        defer { kill(worker.processIdentifier, SIGTERM); worker.waitUntilExit() }
        try await withClient(url, statementTimeout: nil, logger: logger) { client in
            _ = try await client.query("TRUNCATE agentq.jobs RESTART IDENTITY CASCADE", logger: logger).collect()
        }
        let samples = try await BenchSupport.latency(
            url: url, agent: "default", prompt: "ping", samples: latencySamples,
            logger: logger
        ).succeeded
        return (BenchSupport.quantile(samples, 0.5), BenchSupport.quantile(samples, 0.99))
    }

    /// pgbench simple-update (-N, 8 clients, 2 threads) on a scratch database of the same server.
    private func pgbenchRate(server: DatabaseURL, layout: ProjectLayout, logger: Logger) async throws -> Double {
        try await BenchSupport.recreate("agentq_pgbench", server: server, logger: logger)
        let bin = try EmbeddedPostgres(layout: layout).run(["bin"]).trimmingCharacters(in: .whitespacesAndNewlines) + "/pgbench"
        let target = server.with(database: "agentq_pgbench").libpqURL
        _ = try BenchSupport.runTool(bin, ["-i", "-q", "-s", "10", target])
        // -t (a transaction count), not -T: pgbench's timer signal is blocked in the signal mask a
        // Swift process hands its children, so a -T run never ends.
        let out = try BenchSupport.runTool(bin, ["-N", "-c", "8", "-j", "2", "-t", "\(pgbenchTransactions)", target])
        guard let line = out.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(line.dropFirst(6).split(separator: " ").first ?? "")
        else {
            throw AgentQueueError(.configuration, "could not read pgbench's output: \(out)")
        }
        return tps
    }
}
