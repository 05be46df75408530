import AgentQueue
import Foundation

extension TurnsBench {
    /// A run's figures: the turns that ended inside its window, and the counters at both ends of it.
    struct RunFigures: Sendable {
        let clients: Int
        /// The latencies of the run's turns, sorted (ms).
        let latencies: [Double]
        let before: Counters
        let after: Counters

        init(clients: Int, turns: [Turn], before: Counters, after: Counters) {
            self.clients = clients
            self.latencies = turns.map(\.milliseconds).sorted()
            self.before = before
            self.after = after
        }

        var turns: Double { Double(latencies.count) }
        var elapsedSeconds: Double { (after.at - before.at).seconds }
        var turnsPerSecond: Double { turns / elapsedSeconds }

        var postgresCPUMillisecondsPerTurn: Double? {
            guard let end = after.postgresCPUSeconds, let start = before.postgresCPUSeconds else { return nil }
            return (end - start) * 1000 / turns
        }

        var workerCPUMillisecondsPerTurn: Double { (after.workerCPUSeconds - before.workerCPUSeconds) * 1000 / turns }

        /// A counter's growth over the window, per turn.
        func perTurn(_ counter: KeyPath<Counters, Int64>) -> Double {
            Double(after[keyPath: counter] - before[keyPath: counter]) / turns
        }

        var rowsPerTurn: Double { perTurn(\.inserted) + perTurn(\.updated) + perTurn(\.deleted) }

        func latency(_ q: Double) -> Double { BenchSupport.quantile(latencies, q) }

        var json: JSONValue {
            let figures: [String: JSONValue] = [
                "clients": .number(Double(clients)), "turns": .number(turns), "seconds": rounded(elapsedSeconds, 2),
                "turns_per_s": rounded(turnsPerSecond, 1),
                "p50_ms": rounded(latency(0.5), 1), "p95_ms": rounded(latency(0.95), 1), "p99_ms": rounded(latency(0.99), 1),
                "postgres_cpu_ms_per_turn": postgresCPUMillisecondsPerTurn.map { rounded($0, 2) } ?? .null,
                "worker_cpu_ms_per_turn": rounded(workerCPUMillisecondsPerTurn, 2),
                "commits_per_turn": rounded(perTurn(\.commits), 2),
                "wal_bytes_per_turn": rounded(perTurn(\.walPosition), 0),
                "rows_per_turn": rounded(rowsPerTurn, 2),
                "rows_inserted_per_turn": rounded(perTurn(\.inserted), 2),
                "rows_updated_per_turn": rounded(perTurn(\.updated), 2),
                "rows_deleted_per_turn": rounded(perTurn(\.deleted), 2)
            ]
            return .object(figures)
        }

        static let header = [
            column("clients", 7), column("turns/s", 9), column("p50 ms", 9), column("p95 ms", 9), column("p99 ms", 9),
            column("PG CPU ms/turn", 15), column("worker CPU ms/turn", 19), column("commits/turn", 13),
            column("WAL bytes/turn", 15), column("rows/turn", 10)
        ].joined(separator: " ")

        var line: String {
            [
                column("\(clients)", 7), column(fixed(turnsPerSecond, 1), 9), column(fixed(latency(0.5), 1), 9),
                column(fixed(latency(0.95), 1), 9), column(fixed(latency(0.99), 1), 9),
                column(postgresCPUMillisecondsPerTurn.map { fixed($0, 2) } ?? "n/a", 15),
                column(fixed(workerCPUMillisecondsPerTurn, 2), 19), column(fixed(perTurn(\.commits), 2), 13),
                column(fixed(perTurn(\.walPosition), 0), 15), column(fixed(rowsPerTurn, 2), 10)
            ].joined(separator: " ")
        }
    }

    /// The growth run at one checkpoint: the thread's bytes after `turns` turns, and the p50 latency
    /// of its last `growthWindow` turns.
    struct GrowthPoint: Sendable {
        let turns: Int
        let bytes: ThreadBytes
        let recentP50: Double

        var json: JSONValue {
            let byTable = Dictionary(uniqueKeysWithValues: bytes.byTable.map { ($0.table, JSONValue.number(Double($0.bytes))) })
            let figures: [String: JSONValue] = [
                "turns": .number(Double(turns)), "thread_bytes": .number(Double(bytes.total)),
                "bytes_per_turn": rounded(Double(bytes.total) / Double(turns), 0),
                "bytes_by_table": .object(byTable),
                "last_\(TurnsBench.growthWindow)_p50_ms": rounded(recentP50, 1)
            ]
            return .object(figures)
        }

        static let header =
            [
                column("turns", 5), column("thread bytes", 12), column("bytes/turn", 10),
                column("p50 of last \(TurnsBench.growthWindow) ms", 19)
            ].joined(separator: " ") + "   by table"

        var line: String {
            [
                column("\(turns)", 5), column("\(bytes.total)", 12), column(fixed(Double(bytes.total) / Double(turns), 0), 10),
                column(fixed(recentP50, 1), 19)
            ].joined(separator: " ") + "   " + bytes.byTable.map { "\($0.table) \($0.bytes)" }.joined(separator: ", ")
        }
    }

    /// A figure for the JSON, rounded to `places` decimals (null when it is not a number).
    static func rounded(_ value: Double, _ places: Int) -> JSONValue {
        guard value.isFinite else { return .null }
        let scale = pow(10, Double(places))
        return .number((value * scale).rounded() / scale)
    }

    /// `value` with `places` decimals.
    static func fixed(_ value: Double, _ places: Int) -> String {
        value.isFinite ? String(format: "%.\(places)f", value) : "n/a"
    }

    /// `text` right-aligned in `width` characters.
    static func column(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
