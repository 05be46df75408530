import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The worker's way to PostgreSQL: a PostgresNIO pool, every statement bounded by a deadline, and a
/// watchdog that tracks reachability (`isReachable`, for `/health`) and replaces a stuck pool.
///
/// PostgresNIO cannot cancel a statement it sent: on a connection that went silent (packets dropped,
/// no reset) a query waits forever. So each round trip leases its connection here and, past the
/// deadline, closes it, which fails the statement; the pool opens a fresh one. And the pool's
/// reconnect backoff grows to a minute, so after a long outage the watchdog connects directly and,
/// when the server answers but the pool still does not, swaps in a new pool (README "Reliability").
/// No package offers either, hence this type.
public final class Database: Service, Sendable {
    /// How to make a replacement pool, and the direct connection the watchdog tries (nil: the pool
    /// belongs to the caller and is never replaced).
    public struct Connector: Sendable {
        public var pool: PostgresClient.Configuration
        public var direct: PostgresConnection.Configuration

        public init(pool: PostgresClient.Configuration, direct: PostgresConnection.Configuration) {
            self.pool = pool
            self.direct = direct
        }
    }

    /// The deadline of a round trip that names none (the statement timeout plus a margin).
    public let deadline: Duration
    private let connector: Connector?
    private let logger: Logger
    private let current: Mutex<PostgresClient>
    private let health = Mutex(DatabaseHealth())

    /// A database whose pool this type runs and replaces when it is stuck.
    public init(connector: Connector, deadline: Duration, logger: Logger) {
        self.connector = connector
        self.deadline = deadline
        self.logger = logger
        current = Mutex(PostgresClient(configuration: connector.pool, backgroundLogger: logger))
    }

    /// A database over a pool the caller runs (tests, embedding apps): deadlines and health apply,
    /// replacement does not.
    public init(client: PostgresClient, deadline: Duration = .seconds(65), logger: Logger = Logger(label: "agentq.database")) {
        connector = nil
        self.deadline = deadline
        self.logger = logger
        current = Mutex(client)
    }

    /// The pool in use now (it changes when the watchdog replaces a stuck one).
    public var client: PostgresClient { current.withLock { $0 } }

    /// Whether the last round trip reached the server.
    public var isReachable: Bool { health.withLock { $0.isReachable } }

    /// Runs one statement and reads all its rows, within `deadline` (default: `self.deadline`).
    public func query(_ query: PostgresQuery, deadline: Duration? = nil, logger: Logger) async throws -> QueryRows {
        try await withConnection(deadline: deadline, logger: logger) { connection in
            QueryRows(try await connection.checkedQuery(query, logger: logger).collect())
        }
    }

    /// Runs `body` in a transaction on one connection, within `deadline`.
    public func withTransaction<T: Sendable>(
        deadline: Duration? = nil, logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection(deadline: deadline, logger: logger) { connection in
            try await connection.checkedTransaction(logger: logger) { try await body($0) }
        }
    }

    /// Leases a connection for `body`; past `deadline` the connection is closed (failing whatever
    /// `body` waits for) and the call throws `databaseUnavailable`. The wait for a connection counts:
    /// a stuck pool fails its callers too, and the watchdog replaces it.
    public func withConnection<T: Sendable>(
        deadline: Duration? = nil, logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let client = client
        let limit = deadline ?? self.deadline
        let leased = ConnectionSlot()
        do {
            let answer = try await Self.within(limit, closing: leased, logger: logger) {
                try await client.withConnection { connection in
                    // A lease granted after the deadline is not used: nothing would close it.
                    guard leased.hold(connection) else { throw CancellationError() }
                    defer { leased.release() }
                    return try await body(connection)
                }
            }
            guard let value = answer else {
                throw AgentQueueError(.databaseUnavailable, "no answer from the database within \(limit.seconds) s")
            }
            health.withLock { $0.succeeded() }
            return value
        } catch {
            if DatabaseHealth.isConnectionFailure(error) {
                health.withLock { $0.failed(at: .now) }
            } else if !(error is CancellationError) {
                health.withLock { $0.succeeded() }
            }
            throw error
        }
    }

    /// Runs `query` (default `SELECT 1`) on `connection` every `interval` until cancelled; when one
    /// gets no answer `within`, closes the connection and throws (for connections held open, like
    /// a LISTEN, which the pool's keep-alive does not reach).
    public static func ping(
        _ connection: PostgresConnection, every interval: Duration, within limit: Duration, logger: Logger,
        query: PostgresQuery = "SELECT 1"
    ) async throws {
        let slot = ConnectionSlot(connection)
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            let answered = try await within(limit, closing: slot, logger: logger) {
                _ = try await connection.checkedQuery(query, logger: logger).collect()
                return true
            }
            if answered != true {
                throw AgentQueueError(.databaseUnavailable, "the connection did not answer a ping within \(limit.seconds) s")
            }
        }
    }

    /// Runs `body` for at most `limit`; past it, closes the connection in `slot` and returns nil. A
    /// statement PostgresNIO sent cannot be cancelled, so closing its connection (also when the
    /// caller is cancelled) is the only way to stop waiting for it; `body` runs as `Abandonable`
    /// work, so a round trip PostgresNIO lost in that close cannot hold the caller.
    private static func within<T: Sendable>(
        _ limit: Duration, closing slot: ConnectionSlot, logger: Logger, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        let work = Abandonable(body)
        return try await withTaskCancellationHandler {
            try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await work.value }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return nil
                }
                defer { group.cancelAll() }
                if let first = try await group.next(), let value = first { return value }
                let connection = slot.expire()
                logger.debug("no answer in time; closing the connection", metadata: ["limit": "\(limit)", "held": "\(connection != nil)"])
                if let connection { try? await connection.close() }
                work.abandon(AgentQueueError(.databaseUnavailable, "no answer from the database within \(limit.seconds) s"))
                return nil
            }
        } onCancel: {
            _ = slot.expire()?.close() as EventLoopFuture<Void>?
        }
    }

    /// Runs the pool (when it is ours) and the watchdog until cancelled or shut down gracefully.
    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let client = self.client
                await withDiscardingTaskGroup { group in
                    if self.connector != nil {
                        group.addTask {
                            await client.run()
                            self.logger.debug("database pool stopped")
                        }
                    }
                    await self.watchUntilStuck()
                    self.logger.debug("database watchdog stopped")
                    group.cancelAll()
                }
                guard !Task.isCancelled, let connector = self.connector else { return }
                let fresh = PostgresClient(configuration: connector.pool, backgroundLogger: self.logger)
                self.current.withLock { $0 = fresh }
                self.health.withLock { $0.replaced(at: .now) }
                self.logger.warning("database pool replaced: the server answers a direct connection but the pool did not")
            }
        }
    }

    /// Probes the database every second (every quarter second while unreachable) and returns when
    /// the pool should be replaced (never when it is not ours).
    private func watchUntilStuck() async {
        while !Task.isCancelled {
            let reachable = isReachable
            try? await Task.sleep(for: reachable ? .seconds(1) : .milliseconds(250))
            _ = try? await query("SELECT 1", deadline: .seconds(2), logger: logger)
            switch health.withLock({ $0.nextAction(at: .now) }) {
            case .none: break
            case .probeDirect:
                let answered = await probeDirectly()
                health.withLock { $0.directProbe(succeeded: answered, at: .now) }
            case .replacePool:
                if connector != nil { return }
            }
        }
    }

    /// Whether the server answers `SELECT 1` on a connection of its own within two seconds.
    private func probeDirectly() async -> Bool {
        guard let connector else { return false }
        let logger = logger
        let opened = ConnectionSlot()
        let answered: Bool?? = try? await Self.within(.seconds(2), closing: opened, logger: logger) {
            let connection = try await PostgresConnection.connect(configuration: connector.direct, id: 0, logger: logger)
            guard opened.hold(connection) else {
                try? await connection.close()
                throw CancellationError()
            }
            // Closed and waited for on every path: a connection let go while open is a leak (and an
            // assertion in PostgresNIO's debug builds).
            do {
                _ = try await connection.query("SELECT 1", logger: logger).collect()
                try? await connection.close()
                return true
            } catch {
                try? await connection.close()
                throw error
            }
        }
        return answered == true
    }
}

/// The connection a round trip holds, for the task that closes it at the deadline. Once the
/// deadline passed (`expire`), a connection that arrives late (a pool lease granted just then) is
/// refused, so no query can start on a connection nobody would close: a task group waits for its
/// children, and a query on a silent connection never returns by itself.
private final class ConnectionSlot: Sendable {
    private let state: Mutex<(connection: PostgresConnection?, expired: Bool)>
    init(_ connection: PostgresConnection? = nil) { state = Mutex((connection, false)) }

    /// Holds `connection` for the round trip; false when the deadline already passed.
    func hold(_ connection: PostgresConnection) -> Bool {
        state.withLock { s in
            guard !s.expired else { return false }
            s.connection = connection
            return true
        }
    }

    func release() { state.withLock { $0.connection = nil } }

    /// Marks the deadline passed; returns the connection held, to close.
    func expire() -> PostgresConnection? {
        state.withLock { s in
            s.expired = true
            return s.connection
        }
    }
}
