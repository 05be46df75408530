import AgentQueue
import Foundation
import Logging
import PostgresNIO

extension TurnsBench {
    /// Server-wide counters at one instant: the bench database's commits and rows changed
    /// (`pg_stat_database`, which each backend flushes at most once a second, so a reading lags by up
    /// to a second at either end of a run alike), the WAL position, and CPU seconds of the whole
    /// PostgreSQL server and of the worker, from /proc.
    struct Counters: Sendable {
        let at: ContinuousClock.Instant
        let commits: Int64
        let inserted: Int64
        let updated: Int64
        let deleted: Int64
        /// The WAL position, in bytes from 0/0.
        let walPosition: Int64
        /// nil when the server is not on this machine.
        let postgresCPUSeconds: Double?
        let workerCPUSeconds: Double

        static func read(_ client: PostgresClient, postmaster: Int32?, worker: Int32, logger: Logger) async throws -> Counters {
            let at = ContinuousClock.now
            let rows = try await client.query(
                """
                SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8
                  FROM pg_stat_database WHERE datname = current_database()
                """, logger: logger
            ).decode((Int64, Int64, Int64, Int64, Int64).self)
            for try await (commits, inserted, updated, deleted, wal) in rows {
                return Counters(
                    at: at, commits: commits, inserted: inserted, updated: updated, deleted: deleted, walPosition: wal,
                    postgresCPUSeconds: postmaster.flatMap(ServerCPU.seconds(postmaster:)),
                    workerCPUSeconds: ProcessStats(pid: worker).cpuSeconds)
            }
            throw AgentQueueError(.notFound, "pg_stat_database has no row for the bench database")
        }
    }

    /// CPU of every PostgreSQL server process, from /proc (Linux, the server on this machine).
    enum ServerCPU {
        /// The postmaster: the parent of this session's backend, when both are PostgreSQL processes
        /// on this machine; nil otherwise (a server elsewhere).
        static func postmaster(_ client: PostgresClient, logger: Logger) async throws -> Int32? {
            let backend = try await scalar(client, "SELECT pg_backend_pid()", as: Int32.self, logger: logger)
            guard isPostgres(backend), let parent = ProcStat(pid: backend)?.parent, isPostgres(parent) else { return nil }
            return parent
        }

        /// CPU seconds of the whole server: the postmaster's own, its live children's (backends,
        /// checkpointer, WAL writer, autovacuum...), and those of the children it has reaped (backends
        /// and autovacuum workers that exited count in its cutime and cstime). nil once it is gone.
        static func seconds(postmaster: Int32) -> Double? {
            guard let main = ProcStat(pid: postmaster) else { return nil }
            var ticks = main.ownTicks + main.reapedChildrenTicks
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            for pid in entries.compactMap({ Int32($0) }) where pid != postmaster {
                if let process = ProcStat(pid: pid), process.parent == postmaster { ticks += process.ownTicks }
            }
            return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }

        /// Whether `pid` is a PostgreSQL process here (its executable, or its title as a backend).
        static func isPostgres(_ pid: Int32) -> Bool {
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            let commandLine = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return comm.hasPrefix("postgres") || commandLine.contains("postgres")
        }
    }

    /// The fields of /proc/PID/stat that CPU readings need, in clock ticks.
    struct ProcStat {
        let parent: Int32
        /// utime + stime: the process's own CPU.
        let ownTicks: Int64
        /// cutime + cstime: the CPU of the children it has waited for.
        let reapedChildrenTicks: Int64

        init?(pid: Int32) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
                return nil
            }
            // After the command: state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17 (1-based).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 14, let parent = Int32(fields[1]), let utime = Int64(fields[11]), let stime = Int64(fields[12]),
                let cutime = Int64(fields[13]), let cstime = Int64(fields[14])
            else { return nil }
            self.parent = parent
            ownTicks = utime + stime
            reapedChildrenTicks = cutime + cstime
        }
    }

    /// The stored bytes of one thread's rows, by table: `pg_column_size` of each whole row (its
    /// header and its values as stored, TOASTed values inline; indexes not counted).
    struct ThreadBytes: Sendable {
        let byTable: [(table: String, bytes: Int64)]
        var total: Int64 { byTable.reduce(0) { $0 + $1.bytes } }

        static func read(_ client: PostgresClient, thread: UUID, logger: Logger) async throws -> ThreadBytes {
            let rows = try await client.query(
                """
                SELECT (SELECT coalesce(sum(pg_column_size(t.*)), 0)::int8 FROM agentq.threads t WHERE t.id = \(thread)),
                       (SELECT coalesce(sum(pg_column_size(m.*)), 0)::int8 FROM agentq.messages m WHERE m.thread_id = \(thread)),
                       (SELECT coalesce(sum(pg_column_size(c.*)), 0)::int8 FROM agentq.tool_calls c WHERE c.thread_id = \(thread)),
                       (SELECT coalesce(sum(pg_column_size(s.*)), 0)::int8 FROM agentq.streams s WHERE s.thread_id = \(thread)),
                       (SELECT coalesce(sum(pg_column_size(d.*)), 0)::int8 FROM agentq.stream_deltas d
                          JOIN agentq.streams s ON s.id = d.stream_id WHERE s.thread_id = \(thread)),
                       (SELECT coalesce(sum(pg_column_size(j.*)), 0)::int8 FROM agentq.jobs j WHERE j.thread_id = \(thread)),
                       (SELECT coalesce(sum(pg_column_size(u.*)), 0)::int8 FROM agentq.usage u WHERE u.thread_id = \(thread))
                """, logger: logger
            ).decode((Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
            for try await (threads, messages, toolCalls, streams, deltas, jobs, usage) in rows {
                return ThreadBytes(byTable: [
                    ("threads", threads), ("messages", messages), ("tool_calls", toolCalls), ("streams", streams),
                    ("stream_deltas", deltas), ("jobs", jobs), ("usage", usage)
                ])
            }
            throw AgentQueueError(.notFound, "the thread's bytes query returned no row")
        }
    }
}
