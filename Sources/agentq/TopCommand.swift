import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live status screen: throughput sparkline, queues, workers, jobs in hand, latest failures. Ctrl-C leaves.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 1

    @Option(help: "Stop after this many refreshes (default: run until Ctrl-C).")
    var iterations: Int?

    func validate() throws {
        guard interval >= 0.1 else { throw ValidationError("--interval must be at least 0.1 seconds") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
    }

    func run() async throws {
        let logger = try database.makeLogger()
        let (interval, iterations) = (self.interval, self.iterations)
        do {
            try await withClient(try database.resolve(), logger: logger) { client in
                var done = 0
                while iterations.map({ done < $0 }) ?? true {
                    let screen = try await Self.screen(client, logger: logger)
                    // Home the cursor and clear the screen, then draw.
                    printOut("\u{1B}[H\u{1B}[2J" + screen + "\n")
                    done += 1
                    if iterations.map({ done >= $0 }) == true { break }
                    try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                }
            }
        } catch {
            fail(describeDatabaseError(error))
        }
    }

    /// One frame: the last minute's throughput in 5-second buckets, then the status panels.
    static func screen(_ client: PostgresClient, logger: Logger) async throws -> String {
        var buckets = [Int](repeating: 0, count: 12)
        let rows = try await client.query(
            """
            SELECT slice, jobs::int FROM agentq.throughput_last_minute
            """, logger: logger)
        for try await (bucket, count) in rows.decode((Int, Int).self) where (0..<12).contains(bucket) { buckets[11 - bucket] = count }
        let now = Date().formatted(.iso8601.time(includingFractionalSeconds: false))
        var out = ["agentq top  \(now)   jobs finished per 5 s, last minute: \(sparkline(buckets))  (\(buckets.last ?? 0) in the last 5 s)"]
        for panel in StatusCommand.panels {
            out.append("")
            out.append(panel.title)
            out.append(try await StatusCommand.table(client, panel.relation, panel.columns, panel.tail, logger: logger).render())
        }
        return out.joined(separator: "\n")
    }

    /// Counts as a bar of block characters scaled to the largest.
    static func sparkline(_ values: [Int]) -> String {
        let bars = Array("▁▂▃▄▅▆▇█")
        let top = max(values.max() ?? 0, 1)
        return String(values.map { $0 == 0 ? " " : bars[min(bars.count - 1, $0 * (bars.count - 1) / top)] })
    }
}
