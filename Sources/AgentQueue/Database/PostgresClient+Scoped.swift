import Logging
import PostgresNIO

extension PostgresClient {
    /// Runs `body` with a client pool that is running, then shuts the pool down: for commands and
    /// tests that need a database for a while (long-lived processes put the client in a ServiceGroup).
    public static func withRunning<T: Sendable>(_ configuration: PostgresClient.Configuration, logger: Logger,
                                                _ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await client.run(); return nil }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
