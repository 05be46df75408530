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

    /// Pools replaced so far.
    public var replacements: Int { health.withLock { $0.replacements } }

    /// Runs one statement and reads all its rows, within `deadline` (default: `self.deadline`).
    public func query(_ query: PostgresQuery, deadline: Duration? = nil, logger: Logger) async throws -> QueryRows {
        try await withConnection(deadline: deadline, logger: logger) { connection in
            QueryRows(try await connection.query(query, logger: logger).collect())
        }
    }

    /// Runs `body` in a transaction on one connection, within `deadline`.
    public func withTransaction<T: Sendable>(
        deadline: Duration? = nil, logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection(deadline: deadline, logger: logger) { connection in
            try await connection.withTransaction(logger: logger) { try await body($0) }
        }
    }

    /// Leases a connection for `body`; past `deadline` the connection is closed (failing whatever
    /// `body` waits for) and the call throws `databaseUnavailable`.
    public func withConnection<T: Sendable>(
        deadline: Duration? = nil, logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let client = client
        let limit = deadline ?? self.deadline
        let leased = ConnectionSlot()
        do {
            // A cancelled caller (a job stopped mid-statement) cannot interrupt the statement
            // either: closing its connection is the only way to stop waiting.
            let value = try await withTaskCancellationHandler {
                try await withThrowingTaskGroup(of: T?.self) { group in
                    group.addTask {
                        try await client.withConnection { connection in
                            leased.set(connection)
                            defer { leased.set(nil) }
                            return try await body(connection)
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: limit)
                        return nil
                    }
                    defer { group.cancelAll() }
                    if let first = try await group.next(), let value = first { return value }
                    if let connection = leased.get() { try? await connection.close() }
                    throw AgentQueueError(.databaseUnavailable, "no answer from the database within \(limit.seconds) s")
                }
            } onCancel: {
                _ = leased.get()?.close() as EventLoopFuture<Void>?
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

    /// Runs `SELECT 1` on `connection` every `interval` until cancelled; when one gets no answer
    /// `within`, closes the connection and throws (for connections held open, like a LISTEN).
    public static func ping(
        _ connection: PostgresConnection, every interval: Duration, within limit: Duration, logger: Logger,
        query: PostgresQuery = "SELECT 1"
    )
        async throws
    {
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            let answered = await withTaskGroup(of: Bool.self) { group in
                group.addTask { (try? await connection.query(query, logger: logger).collect()) != nil }
                group.addTask {
                    try? await Task.sleep(for: limit)
                    return false
                }
                let first = await group.next() ?? false
                if !first { try? await connection.close() }
                group.cancelAll()
                return first
            }
            if Task.isCancelled { return }
            if !answered { throw AgentQueueError(.databaseUnavailable, "the connection did not answer a ping within \(limit.seconds) s") }
        }
    }

    /// Runs the pool (when it is ours) and the watchdog until cancelled or shut down gracefully.
    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let client = self.client
                await withDiscardingTaskGroup { group in
                    if self.connector != nil { group.addTask { await client.run() } }
                    await self.watchUntilStuck()
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

    /// Whether the server answers `SELECT 1` on a connection of its own within two seconds (the
    /// connection is closed at the deadline, as in `withConnection`).
    private func probeDirectly() async -> Bool {
        guard let connector else { return false }
        let logger = logger
        let opened = ConnectionSlot()
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                guard let connection = try? await PostgresConnection.connect(configuration: connector.direct, id: 0, logger: logger)
                else { return false }
                opened.set(connection)
                let answered = (try? await connection.query("SELECT 1", logger: logger).collect()) != nil
                try? await connection.close()
                return answered
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(2))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if first == nil, let connection = opened.get() { try? await connection.close() }
            return first ?? false
        }
    }
}

/// The connection a round trip holds, for the task that closes it at the deadline.
private final class ConnectionSlot: Sendable {
    private let connection = Mutex<PostgresConnection?>(nil)
    func set(_ value: PostgresConnection?) { connection.withLock { $0 = value } }
    func get() -> PostgresConnection? { connection.withLock { $0 } }
}
