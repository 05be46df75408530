import AgentQueue
import AsyncHTTPClient
import Foundation
import PostgresNIO
import Testing

/// A real worker process with `--metrics-port` and `--log-format json`: the Prometheus endpoint after
/// a small workload, and log lines that are JSON with the job, thread and worker ids.
@Suite struct ObservabilityTests {
    @Test func metricsEndpointCountsASmallWorkloadAndLogsAreJSONLines() async throws {
        try await TestDatabase.with("observability") { client, url in
            let worker = try WorkerProcess(
                url: url,
                arguments: [
                    "--metrics-port", "0", "--metrics-host", "127.0.0.1",
                    "--log-format", "json", "--log-level", "info"
                ])
            let served: @Sendable () -> String? = {
                worker.log.split(separator: "\n").lazy.compactMap { try? JSONValue.parse(String($0)) }
                    .first { $0["message"]?.stringValue == "metrics served" }?["url"]?.stringValue
            }
            try await eventually(timeout: .seconds(30), "metrics server up") { served() != nil }
            let metricsURL = try #require(served())
            try await client.run("SELECT agentq.generate(null, 'hello ' || g || ' [mock words=4]') FROM generate_series(1, 3) g")
            let failing: Int64 = try await client.scalar("SELECT agentq.generate(null, '[mock fail=permanent] no')")
            try await eventually(timeout: .seconds(30), "jobs final") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE finished_at IS NOT NULL") == 4
            }
            let body = try await httpGet(metricsURL)
            let samples = Self.samples(body)
            #expect(samples[#"agentq_jobs_claimed_total{kind="generate",queue="default"}"#] == 4)
            #expect(samples[#"agentq_jobs_finished_total{kind="generate",queue="default",outcome="succeeded"}"#] == 3)
            #expect(samples[#"agentq_jobs_finished_total{kind="generate",queue="default",outcome="failed"}"#] == 1)
            #expect(samples[#"agentq_job_duration_seconds_count{kind="generate",queue="default"}"#] == 4)
            #expect(samples[#"agentq_llm_call_duration_seconds_count{provider="mock",outcome="ok"}"#] == 3)
            #expect(samples[#"agentq_llm_call_duration_seconds_count{provider="mock",outcome="error"}"#] == 1)
            #expect(samples[#"agentq_tokens_total{provider="mock",model="scripted",type="completion"}"#] == 12)
            #expect(samples["agentq_jobs_in_hand"] == 0)
            #expect(samples["agentq_live_streams"] == 0)
            #expect(samples[#"agentq_queue_depth{queue="default"}"#] != nil)
            #expect((samples["agentq_claim_batch_size_sum"] ?? 0) == 4)
            #expect(body.contains("# TYPE agentq_job_duration_seconds histogram"))
            #expect(try await httpGet(metricsURL.replacingOccurrences(of: "/metrics", with: "/health")) == "ok\n")

            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
            let lines = worker.log.split(separator: "\n").map(String.init)
            let objects = lines.compactMap { try? JSONValue.parse($0) }
            #expect(objects.count == lines.count, "every log line is a JSON object: \(lines.filter { (try? JSONValue.parse($0)) == nil })")
            #expect(objects.allSatisfy { $0["ts"]?.stringValue != nil && $0["level"]?.stringValue != nil && $0["message"] != nil })
            #expect(objects.contains { $0["message"]?.stringValue == "worker started" && $0["worker_id"] != nil })
            let failure = objects.first { $0["message"]?.stringValue == "generation failed" }
            #expect(failure?["job_id"]?.stringValue == "\(failing)")
            #expect(failure?["thread_id"]?.stringValue != nil && failure?["worker_id"]?.stringValue != nil)
        }
    }

    /// Prometheus text samples by series (name and labels as printed).
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }
}
