import Logging
import PostgresNIO

extension PostgresClient {
    /// Runs `body` with a client pool that is running, then shuts the pool down: for commands and
    /// tests that need a database for a while (long-lived processes put the client in a ServiceGroup).
    public static func withRunning<T: Sendable>(
        _ configuration: PostgresClient.Configuration, logger: Logger,
        _ body: @Sendable @escaping (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            // The body waits until the run task is about to call run() (whose first step marks the
            // pool running): a lease before that only logs a warning, but on every CLI call.
            let (started, signal) = AsyncStream.makeStream(of: Void.self)
            group.addTask {
                signal.finish(); await client.run(); return nil
            }
            for await _ in started {}
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
