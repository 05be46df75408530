import Logging
import PostgresNIO
import ServiceLifecycle

/// LISTENs on `agentq_jobs` on a dedicated connection and reports wake-ups, cancel requests and
/// catalog changes (agents, tools, providers). PostgresNIO does not re-LISTEN after a lost
/// connection, so this loop reconnects with backoff and reports a wake-up and a catalog change after
/// every (re)connect: notifications sent in between are gone.
struct JobListener: Service {
    static let channel = "agentq_jobs"

    let database: Database
    let logger: Logger
    /// A wake-up: work may be waiting.
    let onWake: @Sendable () -> Void
    /// `agentq.agents`, `agentq.tools` or `agentq.providers` changed: cached rows are stale.
    let onCatalogChange: @Sendable () -> Void
    /// A cancel notification for a job id (a hint: the handler checks the row).
    let onCancel: @Sendable (Int64) async -> Void

    func run() async {
        await cancelWhenGracefulShutdown { await listen() }
    }

    private func listen() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            let listened = ContinuousClock.now
            do {
                try await database.client.withConnection { connection in
                    // A LISTEN connection gets no keep-alive from the pool: ping it, so a connection
                    // that went silent is closed and listened again within seconds. A failed ping
                    // abandons the receiving (a LISTEN PostgresNIO lost in the close never ends).
                    let receiving = Abandonable { try await receive(on: connection) }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            do {
                                try await Database.ping(
                                    connection, every: .seconds(5), within: .seconds(3), logger: logger,
                                    query: "SELECT 1 /* ping of the LISTEN agentq_jobs connection */")
                            } catch {
                                receiving.abandon(error)
                                throw error
                            }
                        }
                        group.addTask { try await receiving.value }
                        _ = try await group.next()
                        group.cancelAll()
                    }
                }
            } catch {
                if Task.isCancelled { return }
                if listened.elapsed > .seconds(10) { delay = .milliseconds(100) }
                logger.warning(
                    "job listener lost its connection; reconnecting",
                    metadata: ["error": "\(describeDatabaseError(error))", "retry_in": "\(delay)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }

    private func receive(on connection: PostgresConnection) async throws {
        try await connection.listen(on: Self.channel) { notifications in
            onCatalogChange()
            onWake()
            for try await notification in notifications {
                if notification.payload.hasPrefix("cancel:"), let id = Int64(notification.payload.dropFirst(7)) {
                    await onCancel(id)
                } else if notification.payload == "catalog" {
                    onCatalogChange()
                } else {
                    onWake()
                }
            }
        }
    }
}
