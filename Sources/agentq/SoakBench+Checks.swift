import AgentQueue
import Foundation
import Logging
import PostgresNIO

extension SoakBench {
    /// One invariant: its name, whether it held, and what broke it.
    struct Verdict {
        let name: String
        let passed: Bool
        let detail: String
    }

    /// Waits for every job to end, checks the invariants, prints the summary (and writes the JSON
    /// figures); true when every invariant held.
    func report(_ client: PostgresClient, start: Date, produced: Produced, faults: Faults, fleet: SoakFleet, logger: Logger)
        async throws -> Bool
    {
        func rows<each T: PostgresDecodable>(_ query: PostgresQuery, as: (repeat each T).Type) async throws -> [(repeat each T)] {
            try await client.query(query, logger: logger).collect().map { try $0.decode((repeat each T).self) }
        }
        func count(_ query: PostgresQuery) async throws -> Int { try await scalar(client, query, as: Int.self, logger: logger) }

        let waitDeadline = ContinuousClock.now + .seconds(180)
        var open = -1
        while ContinuousClock.now < waitDeadline {
            open = (try? await count("SELECT count(*)::int FROM agentq.jobs WHERE finished_at IS NULL")) ?? -1
            if open == 0 { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        let stillOpen = try await rows(
            "SELECT id, kind, status FROM agentq.jobs WHERE finished_at IS NULL ORDER BY id LIMIT 10", as: (Int64, String, String).self)
        let outcomes = try await rows(
            "SELECT kind || ' ' || status, count(*)::int FROM agentq.jobs GROUP BY 1 ORDER BY 1", as: (String, Int).self)
        let quarantined = try await rows(
            "SELECT id, last_error FROM agentq.jobs WHERE status = 'failed' AND last_error LIKE 'quarantined%' ORDER BY id",
            as: (Int64, String).self)
        let failed = try await rows(
            """
            SELECT id, kind, coalesce(last_error, '') FROM agentq.jobs
             WHERE status = 'failed' AND coalesce(last_error, '') NOT LIKE 'quarantined%' ORDER BY id LIMIT 10
            """, as: (Int64, String, String).self)
        let replies = try await rows(
            """
            SELECT id, n FROM (
              SELECT j.id, (SELECT count(*)::int FROM agentq.messages m
                             WHERE m.job_id = j.id AND m.role = 'assistant' AND NOT m.tool AND m.status = 'success') AS n
                FROM agentq.jobs j WHERE j.kind = 'generate' AND j.status = 'succeeded') r
             WHERE n <> 1 ORDER BY id LIMIT 10
            """, as: (Int64, Int).self)
        let twice = try await rows(
            "SELECT item, count(*)::int FROM public.orders GROUP BY item HAVING count(*) > 1 ORDER BY item LIMIT 10", as: (String, Int).self
        )
        let streaming = try await count("SELECT count(*)::int FROM agentq.streams WHERE status = 'streaming'")
        let gaps = try await count(
            "SELECT count(*)::int FROM (SELECT stream_id FROM agentq.stream_deltas GROUP BY 1 HAVING count(*) <> max(seq) + 1) g")
        let dead = fleet.all().filter { !SoakFleet.isAlive($0) }.count
        let minutes = self.minutes
        let latency = try await rows(
            """
            SELECT minute, count(*)::int, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) * 1000,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds) * 1000
              FROM (SELECT floor(extract(epoch FROM created_at - \(start)) / 60)::int AS minute,
                           extract(epoch FROM finished_at - created_at)::float8 AS seconds
                      FROM agentq.jobs WHERE kind = 'generate' AND status = 'succeeded' AND created_at >= \(start)) s
             WHERE minute < \(minutes) GROUP BY minute ORDER BY minute
            """, as: (Int, Int, Double, Double).self)
        let after = try await newJobSucceeds(client, logger: logger)

        let verdicts = [
            Verdict(name: "every job ended", passed: open == 0, detail: "open: \(stillOpen)"),
            Verdict(name: "one success reply per succeeded generation", passed: replies.isEmpty, detail: "replies per job: \(replies)"),
            Verdict(name: "no order placed twice", passed: twice.isEmpty, detail: "orders: \(twice)"),
            Verdict(name: "no stream left streaming", passed: streaming == 0, detail: "\(streaming) streams"),
            Verdict(name: "no gaps in stream deltas", passed: gaps == 0, detail: "\(gaps) streams with gaps"),
            Verdict(name: "workers alive", passed: dead == 0, detail: "\(dead) of \(fleet.all().count) died"),
            Verdict(name: "a new job after the soak succeeds", passed: after == "succeeded", detail: "it ended \(after)")
        ]
        let (first, last) = (latency.first, latency.last)
        let peakMB = Double(faults.peakRSSKB) / 1024
        say("")
        say("soak summary")
        say("  minutes               \(minutes)")
        say(
            "  jobs enqueued         \(produced.jobs): \(produced.stories) stories, \(produced.buys) tool calls, "
                + "\(produced.saved) saved messages; \(produced.cancels) cancels (\(produced.lateCancels) too late)")
        say("  producer retries      \(produced.retries)")
        say("  outcomes              " + outcomes.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        say("  quarantined           \(quarantined.count)" + quarantined.map { "\n    job \($0.0): \($0.1)" }.joined())
        say("  other failures        \(failed.count)" + failed.map { "\n    \($0.1) job \($0.0): \($0.2)" }.joined())
        say(
            "  faults                restarts \(faults.fastRestarts) fast + \(faults.immediateRestarts) immediate, \(faults.kills) worker kills"
        )
        say(String(format: "  peak worker RSS       %.1f MB", peakMB))
        for (minute, n, p50, p99) in latency {
            say(String(format: "  minute %-3d            %5d generations  p50 %7.0f ms  p99 %7.0f ms", minute + 1, n, p50, p99))
        }
        if let first, let last {
            say(String(format: "  latency drift         p50 %.0f → %.0f ms (×%.2f)", first.2, last.2, last.2 / first.2))
        }
        say("")
        for v in verdicts { say((v.passed ? "PASS  " : "FAIL  ") + v.name + (v.passed ? "" : "  (\(v.detail))")) }

        if let json {
            var figures: [String: JSONValue] = [
                "minutes": .number(Double(minutes)), "jobs_enqueued": .number(Double(produced.jobs)),
                "cancels": .number(Double(produced.cancels)), "producer_retries": .number(Double(produced.retries)),
                "restarts_fast": .number(Double(faults.fastRestarts)), "restarts_immediate": .number(Double(faults.immediateRestarts)),
                "worker_kills": .number(Double(faults.kills)), "peak_worker_rss_mb": .number((peakMB * 10).rounded() / 10),
                "quarantined": .number(Double(quarantined.count)),
                "invariants_passed": .bool(verdicts.allSatisfy(\.passed))
            ]
            for (outcome, n) in outcomes { figures["jobs_" + outcome.replacingOccurrences(of: " ", with: "_")] = .number(Double(n)) }
            if let first, let last {
                for (key, value) in [
                    ("first_minute_p50", first.2), ("first_minute_p99", first.3), ("last_minute_p50", last.2), ("last_minute_p99", last.3)
                ] {
                    figures["latency_\(key)_ms"] = .number(value.rounded())
                }
            }
            try BenchSupport.write(figures, to: json)
        }
        return verdicts.allSatisfy(\.passed)
    }

    /// Enqueues one more reply and waits up to a minute for it; how it ended ("open" if it did not).
    private func newJobSucceeds(_ client: PostgresClient, logger: Logger) async throws -> String {
        let job = try await scalar(
            client, "SELECT agentq.generate(null, '[mock words=3] after the soak', 'remote')", as: Int64.self, logger: logger)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let status = try await scalar(client, "SELECT status FROM agentq.jobs WHERE id = \(job)", as: String.self, logger: logger)
            if ["succeeded", "failed", "cancelled"].contains(status) { return status }
            try await Task.sleep(for: .milliseconds(200))
        }
        return "open"
    }
}
