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

extension PostgresClient {
    /// One statement, its rows read in full, on a connection that is open: a lease of a connection
    /// whose session just ended (the pool has not noticed yet) is given back and another one taken,
    /// up to three times, since PostgresNIO 1.33 would drop a query written to it and never answer.
    func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> QueryRows {
        for attempt in 1...3 {
            let rows: [PostgresRow]? = try await withConnection { connection in
                guard !connection.isClosed else { return nil }
                return try await connection.query(query, logger: logger).collect()
            }
            if let rows { return QueryRows(rows) }
            if attempt < 3 { try await Task.sleep(for: .milliseconds(50 * attempt)) }
        }
        throw AgentQueueError(.databaseUnavailable, "the connection pool kept handing out closed connections")
    }
}
