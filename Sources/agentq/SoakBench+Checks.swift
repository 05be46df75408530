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

/// The soak's own PostgreSQL server, made by scripts/embedded-pg with a data folder and port of its
/// own and the project's installed binaries, so restarting it disturbs no other database.
struct SoakServer: Sendable {
    let home: URL
    let port: Int
    let url: DatabaseURL
    private let script: String
    private let packages: String

    init() throws {
        let layout = try ProjectLayout.locate()
        script = layout.embeddedScript.path
        packages = layout.root.appendingPathComponent(".agentq/pg-pkg").path
        home = URL(fileURLWithPath: "/tmp/agentq-soak-\(UUID().uuidString.prefix(8))")
        port = Self.freePort()
        let printed = try Self.run(script, ["start"], home: home, port: port, packages: packages)
        guard let line = printed.split(separator: "\n").last(where: { $0.hasPrefix("postgres") }) else {
            throw AgentQueueError(.embeddedDatabase, "embedded-pg start printed no URL: \(printed)")
        }
        url = try DatabaseURL(String(line))
    }

    /// Stops the server (`fast` or `immediate`), keeps it down `downSeconds`, starts it again.
    func restart(_ mode: String, downSeconds: Int) throws {
        _ = try Self.run(script, ["restart", mode, "\(downSeconds)"], home: home, port: port, packages: packages)
    }

    func destroy() {
        _ = try? Self.run(script, ["destroy"], home: home, port: port, packages: packages)
        try? FileManager.default.removeItem(at: home)
    }

    /// Runs the script through `system(3)`, which reaps its child itself: Foundation's `Process` can
    /// leave the script's bash unreaped (and `waitUntilExit` waiting) once pg_ctl has started the server.
    private static func run(_ script: String, _ arguments: [String], home: URL, port: Int, packages: String) throws -> String {
        let outputFile = home.deletingLastPathComponent().appendingPathComponent("\(home.lastPathComponent)-\(UUID()).out")
        defer { try? FileManager.default.removeItem(at: outputFile) }
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command =
            "AGENTQ_HOME=\(quoted(home.path)) AGENTQ_PG_PORT=\(port) AGENTQ_PG_PKG=\(quoted(packages)) /bin/bash "
            + ([script] + arguments).map(quoted).joined(separator: " ") + " > \(quoted(outputFile.path)) 2>&1 < /dev/null"
        let status = system(command)
        let text = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw AgentQueueError(.embeddedDatabase, "embedded-pg \(arguments.joined(separator: " ")) exited \(status): \(text)")
        }
        return text
    }

    /// A port in 55000-59999 that nothing listens on now (a bind to it succeeds).
    private static func freePort() -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 55000...59999)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        return Int.random(in: 55000...59999)
    }
}
