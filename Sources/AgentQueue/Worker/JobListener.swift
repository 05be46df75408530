import Logging
import PostgresNIO
import ServiceLifecycle

/// LISTENs on `agentq_jobs` on a dedicated connection and reports wake-ups and cancel requests.
/// PostgresNIO does not re-LISTEN after a lost connection, so this loop reconnects with backoff and
/// reports a wake-up after every (re)connect: notifications sent in between are gone.
struct JobListener: Service {
    static let channel = "agentq_jobs"

    let client: PostgresClient
    let logger: Logger
    /// A wake-up: work may be waiting.
    let onWake: @Sendable () -> Void
    /// A cancel notification for a job id (a hint: the handler checks the row).
    let onCancel: @Sendable (Int64) async -> Void

    func run() async {
        await cancelWhenGracefulShutdown { await listen() }
    }

    private func listen() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        delay = .milliseconds(100)
                        onWake()
                        for try await notification in notifications {
                            if notification.payload.hasPrefix("cancel:"), let id = Int64(notification.payload.dropFirst(7)) {
                                await onCancel(id)
                            } else {
                                onWake()
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "job listener lost its connection; reconnecting",
                    metadata: ["error": "\(describeDatabaseError(error))", "retry_in": "\(delay)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }
}
