import AgentQueue
import Foundation
import Logging
import PostgresNIO

/// What the benchmarks share: scratch databases, child processes, percentiles, the JSON output.
enum BenchSupport {
    /// Drops and creates a scratch database, then migrates it; returns its URL.
    static func freshDatabase(_ name: String, server: DatabaseURL, logger: Logger) async throws -> DatabaseURL {
        try await recreate(name, server: server, logger: logger)
        let url = server.with(database: name)
        _ = try await withClient(url, statementTimeout: nil, logger: logger) { client in
            try await Migrator(directory: ProjectLayout.locate().sqlDirectory).migrate(client, logger: logger)
        }
        return url
    }

    static func recreate(_ name: String, server: DatabaseURL, logger: Logger) async throws {
        try await withClient(server.with(database: "postgres"), statementTimeout: nil, maximumConnections: 1, logger: logger) { client in
            _ = try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger).collect()
            _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger).collect()
        }
    }

    /// This `agentq` binary.
    static var executable: URL {
        URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    }

    /// Starts `agentq worker` on `url` with extra flags.
    static func spawnWorker(url: DatabaseURL, concurrency: Int, extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = executable
        p.arguments =
            ["worker", "--database-url", url.libpqURL, "--concurrency", "\(concurrency)", "--log-level", "error", "--allow-mock-models"]
            + extra
        try p.run()
        return p
    }

    /// Starts `agentq mock-llm` on a free port; returns the process and its base URL.
    static func spawnMockLLM() async throws -> (Process, String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = ["mock-llm", "--port", "0"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        var data = Data()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            data.append(pipe.fileHandleForReading.availableData)
            if let text = String(data: data, encoding: .utf8), let line = text.split(separator: "\n").first, text.contains("\n"),
                let url = line.split(separator: " ").last
            {
                return (p, String(url))
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        kill(p.processIdentifier, SIGKILL)
        throw AgentQueueError(.configuration, "agentq mock-llm did not start")
    }

    /// Runs a tool to its end; its output, or an error naming it.
    static func runTool(_ path: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw AgentQueueError(.configuration, "\(path) failed: \(text)") }
        return text
    }

    /// The `q` quantile (0...1) of sorted samples.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
    }

    /// Idle latency: each sample enqueues one prompt for `agent` and times the first `stream.delta`
    /// and the `job.succeeded` a listener sees (milliseconds, sorted).
    static func latency(
        url: DatabaseURL, agent: String, prompt: String, samples: Int,
        logger: Logger
    ) async throws -> (firstDelta: [Double], succeeded: [Double]) {
        try await withClient(url, statementTimeout: nil, logger: logger) { client in
            while try await scalar(client, "SELECT count(*)::int FROM agentq.worker_registry WHERE waiting", as: Int.self, logger: logger)
                == 0
            {
                try await Task.sleep(for: .milliseconds(50))
            }
            let channel = try await scalar(client, "SELECT agentq.events_channel()", as: String.self, logger: logger)
            return try await client.withConnection { connection in
                return try await connection.listen(on: channel) { events in
                    // Registered after PostgresNIO listens (see ThreadFollower), so producers send their events too.
                    _ = try await connection.query("SELECT agentq.listen(NULL)", logger: logger).collect()
                    var first: [Double] = [], done: [Double] = []
                    var iterator = events.makeAsyncIterator()
                    for _ in 0..<samples {
                        let start = ContinuousClock.now
                        let job = try await scalar(
                            client, "SELECT agentq.generate(null, \(prompt), \(agent))", as: Int64.self, logger: logger)
                        var sawDelta = false
                        while let note = try await iterator.next() {
                            guard let e = ThreadEvent.parse(note.payload), e.jobID == job else { continue }
                            if e.type == "stream.delta" && !sawDelta {
                                sawDelta = true
                                first.append((ContinuousClock.now - start).seconds * 1000)
                            }
                            if e.isJobFinal { break }
                        }
                        done.append((ContinuousClock.now - start).seconds * 1000)
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    return (first.sorted(), done.sorted())
                }
            }
        }
    }

    /// Writes the figures as pretty JSON.
    static func write(_ figures: [String: JSONValue], to path: String) throws {
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(JSONValue.object(figures)).write(to: URL(fileURLWithPath: path))
        say("wrote \(path)")
    }
}
