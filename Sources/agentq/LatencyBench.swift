import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// `agentq bench latency`: on an idle worker, enqueue to the first delta a listener sees and enqueue
/// to `job.succeeded`, with the in-process mock (answers at once) and over HTTP from `agentq mock-llm`.
struct LatencyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Measure idle latency: enqueue to first delta and to job.succeeded.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Samples per model.") var samples = 200
    @Option(help: "Where to write the JSON figures.") var json = "bench-results/latency.json"

    func run() async throws {
        let logger = try database.makeLogger()
        do {
            let url = try await BenchSupport.freshDatabase("agentq_bench_latency", server: try database.resolve(), logger: logger)
            let (mock, baseURL) = try await BenchSupport.spawnMockLLM()
            defer { kill(mock.processIdentifier, SIGTERM) }
            try await withClient(url, statementTimeout: nil, logger: logger) { client in
                _ = try await client.query(
                    """
                    INSERT INTO agentq.providers (name, kind, base_url) VALUES ('bench', 'openai', \(baseURL))
                    """, logger: logger
                ).collect()
                _ = try await client.query("INSERT INTO agentq.agents (name, model) VALUES ('remote', 'bench:mock')", logger: logger)
                    .collect()
            }
            let worker = try BenchSupport.spawnWorker(url: url, concurrency: 32)
            defer { kill(worker.processIdentifier, SIGTERM); worker.waitUntilExit() }
            var figures: [String: JSONValue] = ["samples": .number(Double(samples))]
            for (label, agent, prompt) in [("in_process", "default", "ping"), ("http", "remote", "[mock words=20] ping")] {
                let (first, done) = try await BenchSupport.latency(url: url, agent: agent, prompt: prompt, samples: samples, logger: logger)
                let values = [
                    ("first_delta_p50_ms", BenchSupport.quantile(first, 0.5)), ("first_delta_p99_ms", BenchSupport.quantile(first, 0.99)),
                    ("succeeded_p50_ms", BenchSupport.quantile(done, 0.5)), ("succeeded_p99_ms", BenchSupport.quantile(done, 0.99))
                ]
                for (key, v) in values { figures["\(label)_\(key)"] = .number((v * 10).rounded() / 10) }
                say(
                    String(
                        format: "%-10@ enqueue→first delta p50 %.1f ms p99 %.1f ms   enqueue→job.succeeded p50 %.1f ms p99 %.1f ms",
                        label as NSString, values[0].1, values[1].1, values[2].1, values[3].1))
            }
            try BenchSupport.write(figures, to: json)
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}
