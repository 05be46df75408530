import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// `agentq bench soak`: a long mixed load (streamed replies, SQL tool calls, messages to embed,
/// cancels) on two worker processes while the server restarts every minute and a worker is killed
/// every 30 s. It measures what only time shows (worker memory, latency drift) and then checks that
/// the faults lost nothing and did nothing twice. The server is one of its own (a fresh data folder
/// in /tmp, so the soak can restart it), destroyed at the end.
struct SoakBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Mixed load for N minutes under server restarts and worker kills; check the invariants.")

    @Option(help: "Minutes of load.") var minutes = 10
    @Option(help: "Jobs enqueued per second.") var rate = 5.0
    @Option(help: "Concurrency of each worker process.") var concurrency = 50
    @Option(help: "Where to write the JSON figures (default: not written).") var json: String?
    @Option(help: "Log level of this process: trace, debug, info, notice, warning, error.") var logLevel = "error"

    /// What the faults did, and the workers' peak memory.
    struct Faults: Sendable {
        var fastRestarts = 0, immediateRestarts = 0, kills = 0, peakRSSKB = 0
    }

    /// What the producer enqueued, and how often it rode out a lost connection.
    struct Produced: Sendable {
        var stories = 0, buys = 0, saved = 0, cancels = 0, lateCancels = 0, retries = 0
        var jobs: Int { stories + buys + saved }
    }

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level \"\(logLevel)\"") }
        LoggingBootstrap.once(level: level)
        var logger = Logger(label: "agentq.soak")
        logger.logLevel = level
        let passed: Bool
        do {
            passed = try await soak(logger: logger)
        } catch {
            fail(describeDatabaseError(error))
        }
        if !passed { throw ExitCode.failure }
    }

    /// Sets up the server, model and workers, runs the load and the faults, then checks and reports.
    private func soak(logger: Logger) async throws -> Bool {
        let server = try ScratchPostgres(name: "soak")
        defer { server.destroy() }
        let (mock, baseURL) = try await BenchSupport.spawnMockLLM()
        defer { kill(mock.processIdentifier, SIGKILL) }
        let url = server.url
        try await withClient(url, statementTimeout: nil, logger: logger) { client in
            _ = try await Migrator(directory: ProjectLayout.locate().sqlDirectory).migrate(client, logger: logger)
            try await Self.install(client, baseURL: baseURL, logger: logger)
        }
        let fleet = SoakFleet()
        defer { fleet.killAll() }
        for _ in 0..<2 { fleet.add(try spawn(url)) }
        say("soak: \(minutes) min at \(rate) jobs/s on \(url.libpqURL), 2 workers, mock model at \(baseURL)")
        return try await withClient(url, logger: logger) { client in
            let start = try await scalar(client, "SELECT now()", as: Date.self, logger: logger)
            let deadline = ContinuousClock.now + .seconds(minutes * 60)
            async let load = produce(client, until: deadline, logger: logger)
            async let faults = injectFaults(server, fleet: fleet, url: url, until: deadline)
            let (produced, injected) = try await (load, faults)
            say("soak: load stopped (\(produced.jobs) jobs); waiting for every job to end")
            return try await report(client, start: start, produced: produced, faults: injected, fleet: fleet, logger: logger)
        }
    }

    /// The model over HTTP as provider `http`, agent `remote` embedding with the same server, and the
    /// SQL tool `place_order`, which records each order in public.orders (so a tool run twice shows).
    private static func install(_ client: PostgresClient, baseURL: String, logger: Logger) async throws {
        let statements: [PostgresQuery] = [
            "INSERT INTO agentq.providers (name, kind, base_url, options) VALUES ('http', 'openai', \(baseURL), '{}')",
            """
            INSERT INTO agentq.agents (name, model, instructions, embedding_model)
            VALUES ('remote', 'http:mock', 'You are a soak test.', 'http:embed-64')
            """,
            "CREATE TABLE public.orders (id serial PRIMARY KEY, item text NOT NULL, job bigint)",
            """
            CREATE FUNCTION public.place_order(args jsonb, ctx jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
            DECLARE n int;
            BEGIN
                INSERT INTO public.orders (item, job) VALUES (args->>'item', (ctx->>'job_id')::bigint) RETURNING id INTO n;
                RETURN jsonb_build_object('order', n, 'item', args->>'item');
            END $$
            """,
            """
            INSERT INTO agentq.tools (name, description, parameters, kind, target, options) VALUES
              ('place_order', 'Places an order',
               '{"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]}',
               'sql', 'public.place_order', '{"timeout_ms": 3000}')
            """
        ]
        for statement in statements { _ = try await client.query(statement, logger: logger).collect() }
    }

    private func spawn(_ url: DatabaseURL) throws -> Process {
        try BenchSupport.spawnWorker(url: url, concurrency: concurrency, extra: ["--lease", "5", "--poll-ms", "200"])
    }

    /// One producer at `rate` jobs/s until `deadline`: of every 20, 10 streamed stories (the first is
    /// cancelled 300 ms later), 5 tool calls and 5 saved messages, each prompt unique. Statements cut
    /// by a restart are retried; an idempotency key keeps a retried `generate` from enqueuing twice.
    private func produce(_ client: PostgresClient, until deadline: ContinuousClock.Instant, logger: Logger) async throws -> Produced {
        var produced = Produced()
        var cancels: [(job: Int64, at: ContinuousClock.Instant)] = []
        var next = ContinuousClock.now
        var i = 0
        while ContinuousClock.now < deadline {
            while let due = cancels.first, due.at <= .now {
                cancels.removeFirst()
                produced.cancels += 1
                let late = try await retrying(&produced.retries) {
                    do {
                        _ = try await scalar(client, "SELECT agentq.cancel(\(due.job))", as: Bool.self, logger: logger)
                        return false
                    } catch {
                        // 55000: it had already ended (or an attempt cut by a restart had cancelled it).
                        guard sqlState(of: error) == "55000" else { throw error }
                        return true
                    }
                }
                if late { produced.lateCancels += 1 }
            }
            let key = "soak-\(i)"
            switch i % 4 {
            case 1:
                let prompt = "buy \(i) [mock tool=place_order args='{\"item\": \"\(i)\"}']"
                let options = #"{"tools": ["place_order"], "max_attempts": 20, "idempotency_key": "\#(key)"}"#
                _ = try await generate(client, prompt, options, retries: &produced.retries, logger: logger)
                produced.buys += 1
            case 2:
                let text = "note \(i): a message saved to be embedded"
                var again = false
                _ = try await retrying(&produced.retries) {
                    // A save cut by a restart may have committed: a retry saves only if it is not there.
                    let query: PostgresQuery =
                        again
                        ? """
                        SELECT agentq.save_message(agentq.create_thread(), 'user', \(text), agent_name => 'remote')
                         WHERE NOT EXISTS (SELECT 1 FROM agentq.messages WHERE text = \(text))
                        """
                        : "SELECT agentq.save_message(agentq.create_thread(), 'user', \(text), agent_name => 'remote')"
                    again = true
                    return try await client.query(query, logger: logger).collect()
                }
                produced.saved += 1
            default:
                let options = #"{"max_attempts": 20, "idempotency_key": "\#(key)"}"#
                let job = try await generate(
                    client, "[mock words=20 tps=40] story \(i)", options, retries: &produced.retries, logger: logger)
                if i % 20 == 0 { cancels.append((job, .now + .milliseconds(300))) }
                produced.stories += 1
            }
            i += 1
            next = max(next + .seconds(1 / rate), .now)
            try await Task.sleep(until: next)
        }
        return produced
    }

    private func generate(_ client: PostgresClient, _ prompt: String, _ options: String, retries: inout Int, logger: Logger) async throws
        -> Int64
    {
        try await retrying(&retries) {
            try await scalar(
                client, "SELECT agentq.generate(null, \(prompt), 'remote', null, \(options)::jsonb)", as: Int64.self, logger: logger)
        }
    }

    /// Every 5 s the workers' resident memory; every 30 s a worker killed (SIGKILL) and replaced;
    /// every 60 s a server restart, fast and immediate in turn, down for 1 s.
    private func injectFaults(_ server: ScratchPostgres, fleet: SoakFleet, url: DatabaseURL, until deadline: ContinuousClock.Instant)
        async throws -> Faults
    {
        var faults = Faults()
        let start = ContinuousClock.now
        var (sample, killAt, restartAt) = (start, start + .seconds(30), start + .seconds(60))
        while true {
            let next = min(sample, killAt, restartAt)
            guard next < deadline else { break }
            try await Task.sleep(until: next)
            if sample <= .now {
                faults.peakRSSKB = max(faults.peakRSSKB, fleet.all().map(Self.residentKB).max() ?? 0)
                sample += .seconds(5)
            }
            if killAt <= .now {
                guard let victim = fleet.all().randomElement() else { break }
                kill(victim.processIdentifier, SIGKILL)
                while SoakFleet.isAlive(victim) { try await Task.sleep(for: .milliseconds(20)) }
                fleet.replace(victim, with: try spawn(url))
                faults.kills += 1
                killAt += .seconds(30)
            }
            if restartAt <= .now {
                let mode = (faults.fastRestarts + faults.immediateRestarts) % 2 == 0 ? "fast" : "immediate"
                try await offPool { try server.restart(mode, down: .seconds(1)) }
                if mode == "fast" { faults.fastRestarts += 1 } else { faults.immediateRestarts += 1 }
                restartAt += .seconds(60)
            }
        }
        return faults
    }

    /// VmRSS of a live process, in kB (0 once it is gone).
    static func residentKB(_ process: Process) -> Int {
        guard SoakFleet.isAlive(process),
            let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// Runs `body` again while the server is away (a restart cuts this process's connections too),
    /// for up to 30 s of failures in a row.
    func retrying<T>(_ retries: inout Int, _ body: () async throws -> T) async throws -> T {
        var failures = 0
        while true {
            do {
                return try await body()
            } catch {
                guard failures < 120 else { throw error }
                failures += 1
                retries += 1
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }
}

/// Runs blocking work (a server restart, waiting for a process to exit) on a dispatch thread, so it
/// does not hold one of the few cooperative threads the producer needs.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// The live worker processes: the fault loop replaces the killed ones (a lock, as the loop runs
/// beside the producer and the checks read the list after it).
final class SoakFleet: @unchecked Sendable {
    private let lock = NSLock()
    private var processes: [Process] = []

    func add(_ process: Process) { lock.withLock { processes.append(process) } }
    func all() -> [Process] { lock.withLock { processes } }
    func replace(_ old: Process, with new: Process) { lock.withLock { processes = processes.map { $0 === old ? new : $0 } } }

    func killAll() {
        for process in all() where Self.isAlive(process) { kill(process.processIdentifier, SIGKILL) }
    }

    /// Whether the process runs, from /proc: not `Process.isRunning`, which relies on Foundation
    /// noticing the exit (it can miss it, see ScratchPostgres.run); a zombie counts as gone.
    static func isAlive(_ process: Process) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first ?? ""
        return state != "Z" && state != "X"
    }
}
