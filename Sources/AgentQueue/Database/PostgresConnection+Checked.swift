import Logging
import PostgresNIO

extension PostgresConnection {
    /// `query`, refused once the connection is closed. PostgresNIO 1.33 writes a query to the
    /// channel without a write promise: on a channel already closed (by a deadline, say) the query
    /// is dropped and its answer never comes, so a statement sent after a close would wait forever
    /// (a task group waiting for it never ends). Every statement the worker sends after the first one
    /// on a connection goes through here.
    func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRowSequence {
        guard !isClosed else { throw AgentQueueError(.databaseUnavailable, "the connection was closed") }
        return try await self.query(query, logger: logger)
    }

    /// `body` between BEGIN and COMMIT (ROLLBACK when it throws, its error rethrown as it was), every
    /// statement checked as in `checkedQuery`. Used instead of PostgresNIO's `withTransaction`,
    /// whose ROLLBACK after a closed connection would wait forever.
    func checkedTransaction<T: Sendable>(
        logger: Logger, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        _ = try await checkedQuery("BEGIN", logger: logger).collect()
        let value: T
        do {
            value = try await body(self)
        } catch {
            _ = try? await checkedQuery("ROLLBACK", logger: logger).collect()
            throw error
        }
        _ = try await checkedQuery("COMMIT", logger: logger).collect()
        return value
    }
}
