import Logging
import PostgresNIO

extension PostgresConnection {
    /// `query`, refused once the connection is closed. PostgresNIO 1.33 writes a query to the
    /// channel without a write promise: a query written to a closed channel is dropped and its
    /// answer never comes, so a statement sent after a close (a ROLLBACK after a failed statement,
    /// say) would wait forever. Every statement the worker sends goes through here; a query caught
    /// by a close in flight is left behind by the deadline (`Abandonable`).
    func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRowSequence {
        guard !isClosed else { throw AgentQueueError(.databaseUnavailable, "the connection was closed") }
        return try await self.query(query, logger: logger)
    }

    /// `body` between BEGIN and COMMIT (ROLLBACK when it throws, its error rethrown as it was), every
    /// statement checked as in `checkedQuery`. Used instead of PostgresNIO's `withTransaction`,
    /// whose ROLLBACK after a close would wait forever.
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
