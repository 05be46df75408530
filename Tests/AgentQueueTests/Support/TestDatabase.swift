import AgentQueue
import Foundation
import Logging
import PostgresNIO
import Testing

/// A fresh, migrated database of its own for one test, on the real embedded PostgreSQL (or the server
/// of AGENTQ_TEST_DATABASE_URL / DATABASE_URL). Dropped afterwards.
enum TestDatabase {
    static let logger: Logger = {
        var l = Logger(label: "test")
        l.logLevel = .warning
        return l
    }()

    static func serverURL() throws -> DatabaseURL {
        let env = ProcessInfo.processInfo.environment
        if let url = env["AGENTQ_TEST_DATABASE_URL"] ?? env["DATABASE_URL"], !url.isEmpty { return try DatabaseURL(url) }
        return try EmbeddedPostgres(layout: ProjectLayout.locate()).start()
    }

    /// Runs `body` with a running client on a new database named after `name`; `migrate` applies sql/.
    /// Workers run in this process (`WorkerService`) answer the tests' `mock:*` models: the flag
    /// `agentq worker --allow-mock-models` is, for them, `AGENTQ_ALLOW_MOCK_MODELS=1`, set once.
    static let allowMockModels: Void = { setenv(ModelRegistry.allowMockEnvironment, "1", 1) }()

    static func with<T: Sendable>(
        _ name: String, migrate: Bool = true,
        _ body: @Sendable @escaping (PostgresClient, DatabaseURL) async throws -> T
    ) async throws -> T {
        _ = allowMockModels
        let server = try serverURL()
        let database = "aq_\(name.lowercased().filter { $0.isLetter || $0.isNumber })_\(UInt32.random(in: 0...UInt32.max))"
        // CREATE DATABASE copies template1 and refuses (55006) while another session touches it: retry.
        for attempt in 1...10 {
            do {
                try await admin(server) { try await $0.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"), logger: logger) }
                break
            } catch  where sqlState(of: error) == "55006" && attempt < 10 {
                try await Task.sleep(for: .milliseconds(100 * attempt))
            } catch {
                throw TestFailure("creating \(database): \(describeDatabaseError(error))")
            }
        }
        let url = server.with(database: database)
        do {
            let result = try await withClient(url) { client in
                if migrate {
                    try await Migrator(directory: ProjectLayout.locate().sqlDirectory).migrate(client, logger: logger)
                }
                return try await body(client, url)
            }
            try await drop(database, server: server)
            return result
        } catch {
            try? await drop(database, server: server)
            throw TestFailure("\(name): \(describeDatabaseError(error))")  // PSQLError's own text is redacted
        }
    }

    static func withClient<T: Sendable>(
        _ url: DatabaseURL, maximumConnections: Int = 20,
        _ body: @Sendable @escaping (PostgresClient) async throws -> T
    ) async throws -> T {
        try await PostgresClient.withRunning(
            url.clientConfiguration(
                applicationName: "agentq-test", statementTimeout: .seconds(60),
                maximumConnections: maximumConnections),
            logger: logger, body)
    }

    private static func admin(_ server: DatabaseURL, _ body: @Sendable @escaping (PostgresClient) async throws -> Void) async throws {
        try await withClient(server.with(database: "postgres"), maximumConnections: 1, body)
    }

    private static func drop(_ database: String, server: DatabaseURL) async throws {
        try await admin(server) {
            try await $0.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(database) WITH (FORCE)"), logger: logger)
        }
    }
}

extension PostgresClient {
    /// The single value of a one-row, one-column query.
    func scalar<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as: T.Type = T.self) async throws -> T {
        for try await value in try await self.query(query, logger: TestDatabase.logger).decode(T.self) { return value }
        throw TestFailure("query returned no row: \(query.sql)")
    }

    /// All rows of a query, decoded.
    func rows<each C: PostgresDecodable & Sendable>(_ query: PostgresQuery, as: (repeat each C).Type) async throws -> [(repeat each C)] {
        var out: [(repeat each C)] = []
        for try await row in try await self.query(query, logger: TestDatabase.logger).decode((repeat each C).self) {
            out.append(row)
        }
        return out
    }

    /// Runs a statement and reads all its rows (so errors surface).
    func run(_ query: PostgresQuery) async throws {
        _ = try await self.query(query, logger: TestDatabase.logger).collect()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
func eventually(
    timeout: Duration = .seconds(60), _ what: String = "condition",
    _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestFailure("timed out waiting for \(what)")
}

/// Runs `sql` expecting an error with SQLSTATE `state`; returns its message.
@discardableResult
func expectError(_ client: PostgresClient, _ sql: PostgresQuery, _ state: String) async -> String {
    do {
        try await client.run(sql)
        Issue.record("expected SQLSTATE \(state) from \(sql.sql)")
        return ""
    } catch {
        #expect(sqlState(of: error) == state, "\(describeDatabaseError(error))")
        return describeDatabaseError(error)
    }
}
