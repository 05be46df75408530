import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print the dashboards: queues, workers, jobs in hand, the latest failures, today's tokens, busy threads.",
        discussion:
            "The same views psql reads (agentq.queue_stats, workers, active_jobs, failed_jobs, usage_daily, thread_activity); see sql/dashboards.psql."
    )

    @OptionGroup var database: DatabaseOptions

    /// Each panel: a title, the view, its columns, and the order and limit to show.
    static let panels: [(title: String, relation: String, columns: [String], tail: String)] = [
        (
            "queues", "agentq.queue_stats",
            [
                "queue", "status", "jobs", "blocked", "oldest_waiting_s", "finished_last_minute", "finished_last_hour",
                "failure_rate_last_hour"
            ],
            "ORDER BY queue, status"
        ),
        (
            "workers", "agentq.workers",
            ["id", "host", "pid", "concurrency", "jobs_in_hand", "waiting", "heartbeat_age_s", "alive", "lost_contact"],
            "ORDER BY started_at"
        ),
        (
            "jobs in hand", "agentq.active_jobs",
            ["id", "queue", "worker", "attempt", "lease_left_s", "agent_name", "model", "running_s"], "ORDER BY running_s DESC LIMIT 10"
        ),
        (
            "latest failures", "agentq.failed_jobs",
            ["id", "queue", "agent_name", "attempt", "max_attempts", "left(last_error, 70)", "finished_at"], "LIMIT 5"
        ),
        (
            "tokens today", "agentq.usage_daily",
            ["user_id", "agent_name", "model", "calls", "failed_calls", "total_tokens"],
            "WHERE day = current_date ORDER BY total_tokens DESC LIMIT 10"
        ),
        (
            "busiest threads today", "agentq.thread_activity",
            ["thread_id", "user_id", "left(title, 30)", "messages", "active_jobs", "tokens_last_day"],
            "ORDER BY tokens_last_day DESC, updated_at DESC LIMIT 5"
        )
    ]

    func run() async throws {
        let logger = try database.makeLogger()
        do {
            let tables = try await withClient(try database.resolve(), logger: logger) { client in
                var tables: [(String, Table)] = []
                for panel in Self.panels {
                    tables.append((panel.title, try await Self.table(client, panel.relation, panel.columns, panel.tail, logger: logger)))
                }
                return tables
            }
            for (i, (title, table)) in tables.enumerated() {
                print((i == 0 ? "" : "\n") + title)
                print(table.render())
            }
        } catch {
            fail(describeDatabaseError(error))
        }
    }

    /// A view's rows as text cells (the columns are fixed names above, never user input).
    static func table(
        _ client: PostgresClient, _ relation: String, _ columns: [String], _ tail: String,
        logger: Logger
    ) async throws -> Table {
        let select = columns.map { "coalesce((\($0))::text, '')" }.joined(separator: ", ")
        let rows = try await client.query(PostgresQuery(unsafeSQL: "SELECT \(select) FROM \(relation) \(tail)"), logger: logger)
        var cells: [[String]] = []
        for try await row in rows { cells.append(try row.map { try $0.decode(String.self) }) }
        let header = columns.map { $0.hasPrefix("left(") ? String($0.dropFirst(5).prefix { $0 != "," }) : $0 }
        return Table(header: header, rows: cells)
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
                .joined(separator: " | ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        var out = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "-+-")]
        out += rows.map(line)
        out.append("(\(rows.count) row\(rows.count == 1 ? "" : "s"))")
        return out.joined(separator: "\n")
    }
}
