import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// `agentq bench stream`: many concurrent streamed generations from `agentq mock-llm` on one worker
/// process: delta statements per second, rows and bytes per token, notify-to-listener latency, and
/// the worker's CPU and peak memory. Uses its own database (`agentq_bench_stream`).
struct StreamBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Measure concurrent streaming generations on one worker process.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Concurrent generations.") var streams = 1000
    @Option(help: "Tokens (words) each reply streams.") var tokens = 200
    @Option(help: "Tokens per second of each stream.") var tokensPerSecond = 20
    @Option(help: "Where to write the JSON figures.") var json = "bench-results/stream.json"

    func run() async throws {
        let logger = try database.makeLogger()
        let (streams, tokens, rate) = (self.streams, self.tokens, self.tokensPerSecond)
        do {
            let url = try await BenchSupport.freshDatabase("agentq_bench_stream", server: try database.resolve(), logger: logger)
            let (mock, baseURL) = try await BenchSupport.spawnMockLLM()
            defer { kill(mock.processIdentifier, SIGTERM) }
            let worker = try BenchSupport.spawnWorker(url: url, concurrency: streams)
            defer { if worker.isRunning { kill(worker.processIdentifier, SIGKILL) } }
            let received = Mutex<[String: Date]>([:])  // "stream/seq" → when the listener saw it
            let figures: [String: JSONValue] = try await withClient(url, statementTimeout: nil, logger: logger) { client in
                _ = try await client.query(
                    PostgresQuery(unsafeSQL: "ALTER DATABASE agentq_bench_stream SET track_functions = 'pl'"),
                    logger: logger
                ).collect()
                _ = try await client.query(
                    """
                    INSERT INTO agentq.providers (name, kind, base_url) VALUES ('bench', 'openai', \(baseURL))
                    """, logger: logger
                ).collect()
                _ = try await client.query("INSERT INTO agentq.agents (name, model) VALUES ('streamer', 'bench:mock')", logger: logger)
                    .collect()
                while try await scalar(
                    client, "SELECT count(*)::int FROM agentq.worker_registry WHERE waiting", as: Int.self, logger: logger) == 0
                {
                    try await Task.sleep(for: .milliseconds(50))
                }
                let cpuBefore = ProcessStats(pid: worker.processIdentifier)
                let started = ContinuousClock.now
                let channel = try await scalar(client, "SELECT agentq.events_channel()", as: String.self, logger: logger)
                try await client.withConnection { connection in
                    try await connection.listen(on: channel) { events in
                        let prompt = "[mock words=\(tokens) tps=\(rate)] stream"
                        _ = try await client.query(
                            """
                            SELECT agentq.generate(agentq.create_thread(), \(prompt) || ' ' || g, 'streamer')
                              FROM generate_series(1, \(streams)::int) g
                            """, logger: logger
                        ).collect()
                        var finished = 0
                        for try await note in events {
                            let now = Date()
                            guard let e = ThreadEvent.parse(note.payload) else { continue }
                            if e.type == "stream.delta", let s = e.streamID, let seq = e.seq {
                                received.withLock { $0["\(s.uuidString.lowercased())/\(seq)"] = now }
                            } else if e.isJobFinal {
                                finished += 1
                                if finished == streams { break }
                            }
                        }
                    }
                }
                let elapsed = (ContinuousClock.now - started).seconds
                let cpuAfter = ProcessStats(pid: worker.processIdentifier)
                kill(worker.processIdentifier, SIGTERM)
                worker.waitUntilExit()
                try await Task.sleep(for: .milliseconds(500))  // the worker's function stats are flushed at exit
                let statements = try await scalar(
                    client,
                    """
                    SELECT coalesce(sum(calls), 0)::int FROM pg_stat_user_functions WHERE funcname = 'write_deltas'
                    """, as: Int.self, logger: logger)
                let (rows, textBytes, tableBytes, succeeded): (Int, Int, Int, Int) = try await {
                    for try await row in try await client.query(
                        """
                        SELECT (SELECT count(*)::int FROM agentq.stream_deltas),
                               (SELECT coalesce(sum(octet_length(text)), 0)::int FROM agentq.stream_deltas),
                               pg_total_relation_size('agentq.stream_deltas')::int,
                               (SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded')
                        """, logger: logger
                    ).decode((Int, Int, Int, Int).self) { return row }
                    return (0, 0, 0, 0)
                }()
                var latencies: [Double] = []
                let seen = received.withLock { $0 }
                for try await (stream, seq, at) in try await client.query(
                    """
                    SELECT stream_id, seq, created_at FROM agentq.stream_deltas
                    """, logger: logger
                ).decode((UUID, Int, Date).self) {
                    if let got = seen["\(stream.uuidString.lowercased())/\(seq)"] { latencies.append(got.timeIntervalSince(at) * 1000) }
                }
                latencies.sort()
                guard succeeded > 0 else {
                    throw AgentQueueError(
                        .jobFailed,
                        "no bench generation succeeded: \(try await scalar(client, "SELECT coalesce(max(last_error), '?') FROM agentq.jobs", as: String.self, logger: logger))"
                    )
                }
                let totalTokens = Double(succeeded * tokens)
                let cpuSeconds = cpuAfter.cpuSeconds - cpuBefore.cpuSeconds
                let result: [String: JSONValue] = [
                    "streams": .number(Double(streams)), "tokens_per_stream": .number(Double(tokens)),
                    "tokens_per_second_each": .number(Double(rate)), "succeeded": .number(Double(succeeded)),
                    "elapsed_s": .number((elapsed * 10).rounded() / 10),
                    "delta_statements": .number(Double(statements)),
                    "delta_statements_per_s": .number((Double(statements) / elapsed * 10).rounded() / 10),
                    "delta_rows_per_token": .number((Double(rows) / totalTokens * 1000).rounded() / 1000),
                    "delta_text_bytes_per_token": .number((Double(textBytes) / totalTokens * 100).rounded() / 100),
                    "delta_table_bytes_per_token": .number((Double(tableBytes) / totalTokens * 10).rounded() / 10),
                    "notify_p50_ms": .number((BenchSupport.quantile(latencies, 0.5) * 10).rounded() / 10),
                    "notify_p99_ms": .number((BenchSupport.quantile(latencies, 0.99) * 10).rounded() / 10),
                    "notify_samples": .number(Double(latencies.count)),
                    "worker_cpu_s": .number((cpuSeconds * 10).rounded() / 10),
                    "worker_cpu_percent": .number((cpuSeconds / elapsed * 1000).rounded() / 10),
                    "worker_peak_rss_mb": .number((Double(cpuAfter.peakRSSKB) / 1024 * 10).rounded() / 10)
                ]
                say(String(format: "%d streams x %d tokens at %d tok/s: %d succeeded in %.1f s", streams, tokens, rate, succeeded, elapsed))
                say(
                    String(
                        format: "delta statements          %6d  (%.1f/s; one per tick whatever the number of streams)", statements,
                        Double(statements) / elapsed))
                say(
                    String(
                        format: "delta rows per token      %6.3f  text bytes/token %.2f  table bytes/token %.1f",
                        Double(rows) / totalTokens, Double(textBytes) / totalTokens, Double(tableBytes) / totalTokens))
                say(
                    String(
                        format: "notify to listener        p50 %.1f ms  p99 %.1f ms  (%d deltas)", BenchSupport.quantile(latencies, 0.5),
                        BenchSupport.quantile(latencies, 0.99), latencies.count))
                say(
                    String(
                        format: "worker                    CPU %.1f s (%.0f%% of one core)  peak RSS %.1f MB", cpuSeconds,
                        cpuSeconds / elapsed * 100, Double(cpuAfter.peakRSSKB) / 1024))
                return result
            }
            try BenchSupport.write(figures, to: json)
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}

/// CPU time and peak resident memory of a process, from /proc (Linux).
struct ProcessStats {
    var cpuSeconds: Double = 0
    var peakRSSKB: Int = 0

    init(pid: Int32) {
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the command: state is field 3; utime and stime are fields 14 and 15 (1-based).
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        {
            peakRSSKB = Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
    }
}
