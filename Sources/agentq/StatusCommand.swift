import AgentQueue
import ArgumentParser
import Foundation
import PostgresNIO

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print job counts per queue and status, and the live workers.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let logger = try database.makeLogger()
        do {
            let url = try database.resolve()
            let (counts, workers) = try await withClient(url, logger: logger) { client in
                let counts = try await ProducerStore(client: client).queueCounts(logger: logger)
                var workers: [[String]] = []
                let rows = try await client.query("""
                    SELECT id, host, pid::text, concurrency::text, in_hand::text,
                           to_char(now() - heartbeat_at, 'FMSS"s ago"')
                      FROM agentq.worker_registry ORDER BY started_at
                    """, logger: logger)
                for try await (id, host, pid, concurrency, inHand, seen) in rows.decode((String, String, String, String, String, String).self) {
                    workers.append([id, host, pid, concurrency, inHand, seen])
                }
                return (counts, workers)
            }
            print("jobs")
            print(Table(header: ["queue", "status", "count"], rows: counts.map { [$0.queue, $0.status, "\($0.count)"] }).render())
            print("\nworkers")
            print(Table(header: ["id", "host", "pid", "concurrency", "in hand", "heartbeat"], rows: workers).render())
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}

/// A plain aligned text table, like psql's.
struct Table {
    var header: [String]
    var rows: [[String]]

    func render() -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: " | ").trimmingCharacters(in: .whitespaces)
        }
        var out = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "-+-")]
        out += rows.map(line)
        out.append("(\(rows.count) row\(rows.count == 1 ? "" : "s"))")
        return out.joined(separator: "\n")
    }
}
