import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// `agentq bench search`: `agentq.search_messages` on synthetic corpora of 384-dimension vectors
/// (100,000 messages, and more with `--sizes`): corpus load and HNSW build times, latency p50/p99
/// of hybrid, text-only and vector-only search filtered by thread and by user, and the recall@10 of
/// the user-wide vector leg (the HNSW path) against exact search. Each size gets its own database
/// (`agentq_bench_search`, recreated).
struct SearchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Measure hybrid search latency and vector recall on synthetic corpora.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Corpus sizes in messages, comma-separated (each in a fresh database), e.g. 100000,1000000.") var sizes = "100000"
    @Option(help: "Users the threads belong to (a few heavy users and a long tail).") var users = 1000
    @Option(help: "Threads per user, on average.") var threadsPerUser = 20
    @Option(help: "Topics, each with its own vocabulary and vector centroid.") var topics = 50
    @Option(help: "Measured queries per series.") var queries = 300
    @Option(help: "Warm-up queries per series (not measured).") var warmup = 50
    @Option(help: "Queries of the recall run.") var recallQueries = 100
    @Option(
        name: .customLong("maintenance-work-mem-mb"),
        help: "maintenance_work_mem of the HNSW build, in MB (0: 1 GB per 250,000 messages, at least 1 GB).")
    var maintenanceWorkMemMB = 0
    @Option(help: "Where to write the JSON figures.") var json = "bench-results/search.json"

    func run() async throws {
        let logger = try database.makeLogger()
        do {
            let server = try database.resolve()
            let counts = sizes.split(separator: ",").compactMap { Int(String($0).trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }), users > 0, threadsPerUser > 0, topics > 0,
                queries > 0, recallQueries > 0
            else {
                throw AgentQueueError(.configuration, "--sizes needs message counts (e.g. 100000,1000000); counts must be positive")
            }
            var figures: [String: JSONValue] = [
                "dims": .number(Double(SearchRun.dims)), "model": .string(SearchRun.model),
                "users": .number(Double(users)), "threads": .number(Double(users * threadsPerUser)),
                "topics": .number(Double(topics)), "queries_per_series": .number(Double(queries)),
                "recall_queries": .number(Double(recallQueries)), "limit": .number(10)
            ]
            for n in counts {
                let run = SearchRun(
                    messages: n, users: users, threadsPerUser: threadsPerUser, topics: topics, queries: queries,
                    warmup: warmup, recallQueries: recallQueries,
                    maintenanceWorkMemMB: maintenanceWorkMemMB > 0 ? maintenanceWorkMemMB : max(1024, n / 250))
                let url = try await BenchSupport.freshDatabase("agentq_bench_search", server: server, logger: logger)
                let result = try await run.measure(url: url, logger: logger)
                figures["messages_\(n)"] = .object(result)
            }
            try BenchSupport.write(figures, to: json)
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}

/// One corpus size: builds the corpus in SQL, then measures.
struct SearchRun: Sendable {
    static let dims = 384
    static let model = "bench:embed-384"

    let messages: Int
    let users: Int
    let threadsPerUser: Int
    let topics: Int
    let queries: Int
    let warmup: Int
    let recallQueries: Int
    let maintenanceWorkMemMB: Int

    var threads: Int { users * threadsPerUser }

    /// A query of a series: a thread (and its user) and a topic's words and vector.
    struct Query: Sendable {
        let threadID: UUID
        let userID: String
        let text: String
        let vector: String
    }

    enum Mode: String, CaseIterable, Sendable {
        case hybrid, text, vector
    }

    enum Scope: String, CaseIterable, Sendable {
        case thread, user
    }

    func measure(url: DatabaseURL, logger: Logger) async throws -> [String: JSONValue] {
        var figures: [String: JSONValue] = [
            "messages": .number(Double(messages)),
            "maintenance_work_mem_mb": .number(Double(maintenanceWorkMemMB))
        ]
        say(
            String(
                format: "corpus: %d messages, %d users, %d threads, %d topics, %d-dimension vectors", messages, users, threads,
                topics, Self.dims))
        // One connection: setseed makes the corpus repeatable (ids aside), and the session settings stay.
        let load: [String: Double] = try await withClient(url, statementTimeout: nil, maximumConnections: 1, logger: logger) { client in
            try await client.withConnection { conn in
                var t: [String: Double] = [:]
                for (key, sql) in corpusStatements() {
                    let start = ContinuousClock.now
                    _ = try await conn.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
                    t[key, default: 0] += (ContinuousClock.now - start).seconds
                }
                var start = ContinuousClock.now
                for table in ["agentq.threads", "agentq.messages", "agentq.embeddings"] {
                    _ = try await conn.query(PostgresQuery(unsafeSQL: "VACUUM ANALYZE \(table)"), logger: logger).collect()
                }
                t["analyze"] = (ContinuousClock.now - start).seconds
                _ = try await conn.query(
                    PostgresQuery(unsafeSQL: "SET maintenance_work_mem = '\(maintenanceWorkMemMB)MB'"),
                    logger: logger
                ).collect()
                start = ContinuousClock.now
                _ = try await conn.query("SELECT agentq.ensure_vector_index(\(Self.dims)::int)", logger: logger).collect()
                t["index"] = (ContinuousClock.now - start).seconds
                _ = try await conn.query("RESET maintenance_work_mem", logger: logger).collect()
                _ = try await conn.query("ANALYZE agentq.embeddings", logger: logger).collect()
                for try await bytes in try await conn.query(
                    """
                    SELECT pg_relation_size(to_regclass('agentq.' || agentq.vector_index_name(\(Self.dims)::int)))::int8
                    """, logger: logger
                ).decode(Int64.self) {
                    t["index_bytes"] = Double(bytes)
                }
                return t
            }
        }
        let loadSeconds = ["threads", "messages", "embeddings"].reduce(0.0) { $0 + (load[$1] ?? 0) }
        figures["load_s"] = .number((loadSeconds * 10).rounded() / 10)
        figures["load_messages_s"] = .number(((load["messages"] ?? 0) * 10).rounded() / 10)
        figures["load_embeddings_s"] = .number(((load["embeddings"] ?? 0) * 10).rounded() / 10)
        figures["vacuum_analyze_s"] = .number(((load["analyze"] ?? 0) * 10).rounded() / 10)
        figures["hnsw_build_s"] = .number(((load["index"] ?? 0) * 10).rounded() / 10)
        figures["hnsw_index_mb"] = .number(((load["index_bytes"] ?? 0) / 1_048_576).rounded())
        say(
            String(
                format:
                    "load                      %7.1f s  (threads %.1f s, messages with tsvectors %.1f s, vectors %.1f s; vacuum analyze %.1f s)",
                loadSeconds, load["threads"] ?? 0, load["messages"] ?? 0, load["embeddings"] ?? 0, load["analyze"] ?? 0))
        say(
            String(
                format: "HNSW build                %7.1f s  (%.0f MB, maintenance_work_mem %d MB)", load["index"] ?? 0,
                (load["index_bytes"] ?? 0) / 1_048_576, maintenanceWorkMemMB))

        // Measured one query at a time on one connection (so the index-scan counters are this session's).
        let measured: [String: JSONValue] = try await withClient(url, statementTimeout: nil, maximumConnections: 1, logger: logger) {
            client in
            var out: [String: JSONValue] = [:]
            let series = try await fetchQueries(client, sql: querySetSQL(), logger: logger)
            for mode in Mode.allCases {
                for scope in Scope.allCases {
                    for q in series.prefix(warmup) { _ = try await search(client, q, mode: mode, scope: scope, logger: logger) }
                    let scansBefore = try await hnswScans(client, logger: logger)
                    var ms: [Double] = []
                    var hits = 0
                    for q in series.prefix(queries) {
                        let start = ContinuousClock.now
                        hits += try await search(client, q, mode: mode, scope: scope, logger: logger).count
                        ms.append((ContinuousClock.now - start).seconds * 1000)
                    }
                    let scans = try await hnswScans(client, logger: logger) - scansBefore
                    ms.sort()
                    let key = "\(mode.rawValue)_\(scope.rawValue)"
                    let (p50, p99) = (BenchSupport.quantile(ms, 0.5), BenchSupport.quantile(ms, 0.99))
                    out["\(key)_p50_ms"] = .number((p50 * 100).rounded() / 100)
                    out["\(key)_p99_ms"] = .number((p99 * 100).rounded() / 100)
                    out["\(key)_mean_hits"] = .number((Double(hits) / Double(ms.count) * 100).rounded() / 100)
                    out["\(key)_hnsw_scans"] = .number(Double(scans))
                    let label = "\(mode.rawValue) by \(scope.rawValue)".padding(toLength: 26, withPad: " ", startingAt: 0)
                    say(
                        label
                            + String(
                                format: "p50 %6.2f ms  p99 %6.2f ms  (%d queries, %.1f hits each, HNSW scans %d)",
                                p50, p99, ms.count, Double(hits) / Double(ms.count), scans))
                }
            }
            // Recall of the user-wide vector leg against exact search (index scans off: the user's
            // rows are read and sorted by distance), on the heaviest users, whose searches the planner
            // sends through the HNSW index.
            let recallSet = try await fetchQueries(client, sql: recallSetSQL(), logger: logger)
            let scansBefore = try await hnswScans(client, logger: logger)
            var found = 0, expected = 0
            var approxMS: [Double] = [], exactMS: [Double] = []
            try await client.withConnection { conn in
                for q in recallSet {
                    var start = ContinuousClock.now
                    let approx = try await vectorIDs(conn, q, logger: logger)
                    approxMS.append((ContinuousClock.now - start).seconds * 1000)
                    _ = try await conn.query("BEGIN", logger: logger).collect()
                    _ = try await conn.query("SET LOCAL enable_indexscan = off", logger: logger).collect()
                    start = ContinuousClock.now
                    let exact = try await vectorIDs(conn, q, logger: logger)
                    exactMS.append((ContinuousClock.now - start).seconds * 1000)
                    _ = try await conn.query("COMMIT", logger: logger).collect()
                    expected += exact.count
                    found += Set(approx).intersection(exact).count
                }
            }
            let scans = try await hnswScans(client, logger: logger) - scansBefore
            let recall = expected > 0 ? Double(found) / Double(expected) : 0
            approxMS.sort()
            exactMS.sort()
            out["recall_at_10"] = .number((recall * 1000).rounded() / 1000)
            out["recall_hnsw_scans"] = .number(Double(scans))
            out["recall_queries"] = .number(Double(recallSet.count))
            out["recall_hnsw_p50_ms"] = .number((BenchSupport.quantile(approxMS, 0.5) * 100).rounded() / 100)
            out["recall_exact_p50_ms"] = .number((BenchSupport.quantile(exactMS, 0.5) * 100).rounded() / 100)
            say(
                String(
                    format:
                        "vector recall@10 by user  %7.3f    (%d queries on the heaviest users, HNSW scans %d; p50 %.2f ms, exact %.2f ms)",
                    recall, recallSet.count, scans, BenchSupport.quantile(approxMS, 0.5), BenchSupport.quantile(exactMS, 0.5)))
            return out
        }
        figures.merge(measured) { _, new in new }
        return figures
    }

    /// One search; the ids of its hits.
    private func search(_ client: PostgresClient, _ q: Query, mode: Mode, scope: Scope, logger: Logger) async throws -> [UUID] {
        let text: String? = mode == .vector ? nil : q.text
        let vector: String? = mode == .text ? nil : q.vector
        let thread: UUID? = scope == .thread ? q.threadID : nil
        let user: String? = scope == .user ? q.userID : nil
        return try await client.query(
            """
            SELECT message_id FROM agentq.search_messages(\(text), \(thread), \(user), 10, \(vector)::vector, \(Self.model))
            """, logger: logger
        ).decode(UUID.self).reduce(into: [UUID]()) { $0.append($1) }
    }

    /// A user-wide vector-only search on one connection (the recall run).
    private func vectorIDs(_ conn: PostgresConnection, _ q: Query, logger: Logger) async throws -> [UUID] {
        try await conn.query(
            """
            SELECT message_id FROM agentq.search_messages(NULL, NULL, \(q.userID), 10, \(q.vector)::vector, \(Self.model))
            """, logger: logger
        ).decode(UUID.self).reduce(into: [UUID]()) { $0.append($1) }
    }

    /// Scans of the dimension's HNSW index so far, this session's included.
    private func hnswScans(_ client: PostgresClient, logger: Logger) async throws -> Int {
        _ = try await client.query("SELECT pg_stat_force_next_flush()", logger: logger).collect()
        return try await scalar(
            client,
            """
            SELECT coalesce(sum(idx_scan), 0)::int8 FROM pg_stat_user_indexes WHERE indexrelname = 'embeddings_hnsw_384'
            """, as: Int.self, logger: logger)
    }

    private func fetchQueries(_ client: PostgresClient, sql: String, logger: Logger) async throws -> [Query] {
        var out: [Query] = []
        for try await (thread, user, text, vector) in try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            .decode((UUID, String, String, String).self)
        {
            out.append(Query(threadID: thread, userID: user, text: text, vector: vector))
        }
        return out
    }
}
