import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// `agentq bench turns`: the tool-calling turn end to end, from concurrent producers over real HTTP
/// to `agentq mock-llm`, on one worker process. A turn: `agentq.generate` with a prompt whose
/// directive (`[mock tool=lookup args='{"sku": ...}' words=20]`) makes the first model call ask for
/// the SQL tool `lookup` and the second, once the result is in, stream 20 words; the producer waits
/// for the job's `job.succeeded` with a plain LISTEN on its thread's channel. For each client count:
/// turns/s, latency p50/p95/p99 and, per turn, PostgreSQL CPU (every server process), worker CPU,
/// commits, WAL bytes and rows; then one thread's bytes as it grows to 80 turns. Uses its own
/// database (`agentq_bench_turns`, recreated each run).
struct TurnsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turns",
        abstract: "Measure tool-calling turns (prompt, tool call, SQL tool, streamed answer) from concurrent clients.")

    /// Words of each turn's answer.
    static let answerWords = 20
    /// Products in the catalogue that `lookup` reads.
    static let catalogueRows = 1000
    /// Turns after which the growth run records its thread's bytes (the last is the run's length).
    static let growthCheckpoints = [20, 40, 80]
    /// Turns whose latency the growth run's p50 is taken over, at each checkpoint.
    static let growthWindow = 20
    /// The agent the turns run on.
    static let agent = "turns"

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Concurrent clients of each run, comma-separated (one run each).") var clients = "1,8,64,256"
    @Option(help: "Seconds each run is measured, after its warm-up.") var seconds = 20
    @Option(help: "Seconds of warm-up before each run's measurement (not counted).") var warmup = 2.0
    @Option(help: "Concurrency of the worker process.") var concurrency = 256
    @Option(
        help: "How clients wait for their jobs: own (a LISTEN connection each) or shared (one LISTEN connection for all).")
    var follow: Follow = .own
    @Option(help: "Where to write the JSON figures.") var json = "bench-results/turns.json"

    /// The client counts of `--clients`.
    var clientCounts: [Int] {
        clients.split(separator: ",").compactMap { Int(String($0).trimmingCharacters(in: .whitespaces)) }
    }

    func validate() throws {
        let counts = clientCounts
        guard !counts.isEmpty, counts.count == clients.split(separator: ",").count, counts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--clients needs positive client counts, comma-separated (e.g. 1,8,64,256)")
        }
        guard seconds > 0, warmup >= 0, concurrency > 0 else {
            throw ValidationError("--seconds and --concurrency must be at least 1, --warmup at least 0")
        }
    }

    func run() async throws {
        let logger = try database.makeLogger()
        let counts = clientCounts
        do {
            let url = try await BenchSupport.freshDatabase("agentq_bench_turns", server: try database.resolve(), logger: logger)
            let (mock, baseURL) = try await BenchSupport.spawnMockLLM()
            defer { kill(mock.processIdentifier, SIGTERM) }
            // Each client holds a connection; the worker's pool, its probe and the readings need a few more.
            let needed = (counts.max() ?? 1) + 16
            try await withClient(url, statementTimeout: nil, logger: logger) { client in
                try await Self.checkConnections(client, needed: needed, logger: logger)
                try await Self.install(client, baseURL: baseURL, logger: logger)
            }
            let worker = try BenchSupport.spawnWorker(url: url, concurrency: concurrency)
            defer { kill(worker.processIdentifier, SIGTERM); worker.waitUntilExit() }
            let runner = Runner(
                url: url, worker: worker.processIdentifier, seconds: seconds, warmup: warmup, follow: follow, logger: logger)
            try await runner.probe()
            say(
                "turns: one worker (--concurrency \(concurrency)), model agentq mock-llm at \(baseURL), "
                    + "\(seconds) s per run after \(warmup) s of warm-up, clients following their threads: \(follow.rawValue)")
            var figures: [String: JSONValue] = [
                "clients": .array(counts.map { JSONValue.number(Double($0)) }), "seconds": .number(Double(seconds)),
                "warmup_s": .number(warmup), "worker_concurrency": .number(Double(concurrency)), "follow": .string(follow.rawValue),
                "answer_words": .number(Double(Self.answerWords)), "catalogue_rows": .number(Double(Self.catalogueRows))
            ]
            say(RunFigures.header)
            for count in counts {
                let result = try await runner.measure(clients: count)
                figures["clients_\(count)"] = result.json
                say(result.line)
            }
            let growth = try await runner.growth()
            figures["thread_growth"] = .array(growth.map(\.json))
            say("")
            say(GrowthPoint.header)
            for point in growth { say(point.line) }
            try BenchSupport.write(figures, to: json)
        } catch {
            fail(describeDatabaseError(error))
        }
    }

    /// A turn's prompt: its directive asks for one `lookup` of `sku`, then `answerWords` words.
    static func prompt(sku: String) -> String {
        #"[mock tool=lookup args='{"sku": "\#(sku)"}' words=\#(answerWords)] What does \#(sku) cost, and is it in stock?"#
    }

    /// Refuses client counts the server has no connections for.
    private static func checkConnections(_ client: PostgresClient, needed: Int, logger: Logger) async throws {
        let limit = try await scalar(client, "SELECT current_setting('max_connections')::int", as: Int.self, logger: logger)
        guard needed <= limit else {
            throw AgentQueueError(
                .configuration,
                "the largest run needs about \(needed) connections and the server allows \(limit) (max_connections): "
                    + "lower --clients or raise max_connections")
        }
    }

    /// The model over HTTP as provider `bench`; the catalogue (1,000 products) and the SQL tool
    /// `lookup` that reads one product by its key; the agent `turns`, which offers `lookup`.
    private static func install(_ client: PostgresClient, baseURL: String, logger: Logger) async throws {
        let statements: [PostgresQuery] = [
            "INSERT INTO agentq.providers (name, kind, base_url) VALUES ('bench', 'openai', \(baseURL))",
            "CREATE TABLE public.catalogue (sku text PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL, stock int NOT NULL)",
            """
            INSERT INTO public.catalogue (sku, name, price_cents, stock)
            SELECT 'sku-' || g, 'product ' || g, 100 + (g * 7919) % 99900, (g * 31) % 500
              FROM generate_series(1, \(Self.catalogueRows)::int) g
            """,
            "ANALYZE public.catalogue",
            """
            CREATE FUNCTION public.lookup(args jsonb, ctx jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
                SELECT coalesce(
                    (SELECT jsonb_build_object('sku', c.sku, 'name', c.name, 'price_cents', c.price_cents, 'stock', c.stock)
                       FROM public.catalogue c WHERE c.sku = args->>'sku'),
                    jsonb_build_object('error', 'no product ' || coalesce(args->>'sku', 'without a sku')))
            $$
            """,
            """
            INSERT INTO agentq.tools (name, description, parameters, kind, target) VALUES
              ('lookup', 'Looks a product up in the catalogue by its SKU: name, price in cents, stock',
               '{"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}', 'sql', 'public.lookup')
            """,
            """
            INSERT INTO agentq.agents (name, model, instructions, tools)
            VALUES (\(Self.agent), 'bench:mock', 'You answer questions about the catalogue; look products up first.', '{lookup}')
            """
        ]
        for statement in statements { _ = try await client.query(statement, logger: logger).collect() }
    }
}

extension TurnsBench.Follow: ExpressibleByArgument {}
