import AgentQueue
import Foundation
import PostgresNIO
import Testing

@Suite struct MigrationTests {
    @Test func migratingTwiceAppliesNothingTheSecondTime() async throws {
        try await TestDatabase.with("migrate_twice", migrate: false) { client, _ in
            let migrator = try Migrator(directory: ProjectLayout.locate().sqlDirectory)
            let all = try migrator.migrations().map(\.version)
            #expect(all.count >= 5 && all == all.sorted())
            let first = try await migrator.migrate(client, logger: TestDatabase.logger)
            #expect(first == all)
            #expect(try await migrator.migrate(client, logger: TestDatabase.logger).isEmpty)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.schema_migrations") == all.count)
            #expect(try await client.scalar("SELECT model FROM agentq.agents WHERE name = 'default'") == "mock:scripted")
        }
    }

    @Test func concurrentMigrationsApplyEachVersionOnce() async throws {
        try await TestDatabase.with("migrate_concurrent", migrate: false) { client, url in
            let dir = try ProjectLayout.locate().sqlDirectory
            let applied = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<4 {
                    group.addTask {  // four separate pools, as four processes would have
                        try await TestDatabase.withClient(url) { c in
                            try await Migrator(directory: dir).migrate(c, logger: TestDatabase.logger)
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            let all = try Migrator(directory: dir).migrations().map(\.version)
            #expect(applied.sorted() == all)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.schema_migrations") == all.count)
        }
    }

    @Test func everyMigrationAppliesWithPsqlAndTwice() async throws {
        try await TestDatabase.with("migrate_psql", migrate: false) { client, url in
            let layout = try ProjectLayout.locate()
            let bin = try EmbeddedPostgres(layout: layout).run(["bin"]).trimmingCharacters(in: .whitespacesAndNewlines)
            for file in try Migrator(directory: layout.sqlDirectory).migrations() {
                for _ in 0..<2 {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: bin + "/psql")
                    p.arguments = [
                        url.libpqURL, "-q", "-v", "ON_ERROR_STOP=1", "-f",
                        layout.sqlDirectory.appendingPathComponent("\(file.version)_\(file.name).sql").path
                    ]
                    p.standardOutput = FileHandle.nullDevice
                    p.standardError = FileHandle.nullDevice
                    try p.run()
                    p.waitUntilExit()
                    #expect(p.terminationStatus == 0, "psql -f \(file.version)_\(file.name).sql failed")
                }
            }
            #expect(try await Migrator(directory: layout.sqlDirectory).migrate(client, logger: TestDatabase.logger).isEmpty)
        }
    }
}

extension MigrationTests {
    @Test func aMigrationEditedAfterItWasAppliedIsRefused() async throws {
        try await TestDatabase.with("migrate_drift") { client, _ in
            let source = try ProjectLayout.locate().sqlDirectory
            let copy = FileManager.default.temporaryDirectory.appendingPathComponent("aq-sql-\(UUID())")
            try FileManager.default.copyItem(at: source, to: copy)
            defer { try? FileManager.default.removeItem(at: copy) }
            let edited = copy.appendingPathComponent("002_producer_api.sql")
            try (String(contentsOf: edited, encoding: .utf8) + "\n-- edited\n").write(to: edited, atomically: true, encoding: .utf8)
            do {
                try await Migrator(directory: copy).migrate(client, logger: TestDatabase.logger)
                Issue.record("a changed migration was accepted")
            } catch let error as AgentQueueError {
                #expect(error.code == .migration)
                #expect(error.message.contains("002_producer_api.sql changed after it was applied"))
            }
        }
    }
}

extension MigrationTests {
    /// The Swift migrator (each file split into statements, in one transaction per file) and `psql -f`
    /// (each file twice) build the same schema, so a file may rely on neither: `pg_dump --schema-only`
    /// of the two databases is the same text (sql/README.md).
    @Test func theMigratorAndPsqlBuildTheSameSchema() async throws {
        let layout = try ProjectLayout.locate()
        let bin = try EmbeddedPostgres(layout: layout).run(["bin"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let viaMigrator = try await TestDatabase.with("dump_migrator", migrate: false) { client, url in
            let migrator = Migrator(directory: layout.sqlDirectory)
            let all = try migrator.migrations().map(\.version)
            #expect(try await migrator.migrate(client, logger: TestDatabase.logger) == all)
            #expect(try await migrator.migrate(client, logger: TestDatabase.logger).isEmpty)
            return try Self.schemaDump(bin: bin, url: url)
        }
        let viaPsql = try await TestDatabase.with("dump_psql", migrate: false) { client, url in
            for file in try Migrator(directory: layout.sqlDirectory).migrations() {
                let path = layout.sqlDirectory.appendingPathComponent("\(file.version)_\(file.name).sql").path
                for _ in 0..<2 {
                    let status = try Self.run(bin + "/psql", [url.libpqURL, "-q", "-v", "ON_ERROR_STOP=1", "-f", path], quiet: true)
                    #expect(status == 0, "psql -f \(file.version)_\(file.name).sql failed")
                }
            }
            #expect(try await Migrator(directory: layout.sqlDirectory).migrate(client, logger: TestDatabase.logger).isEmpty)
            return try Self.schemaDump(bin: bin, url: url)
        }
        #expect(viaMigrator.contains("CREATE TABLE agentq.jobs"))
        if viaMigrator != viaPsql {
            let a = viaMigrator.split(separator: "\n", omittingEmptySubsequences: false)
            let b = viaPsql.split(separator: "\n", omittingEmptySubsequences: false)
            let line = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
            Issue.record(
                """
                the schemas differ from dump line \(line + 1): migrator "\(line < a.count ? a[line] : "<end>")", \
                psql -f "\(line < b.count ? b[line] : "<end>")"
                """)
        }
    }

    /// `pg_dump --schema-only --no-owner` of a database, without its `\restrict` and `\unrestrict`
    /// lines (pg_dump 18 writes a random key in them).
    static func schemaDump(bin: String, url: DatabaseURL) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("aq-schema-\(UUID()).sql")
        defer { try? FileManager.default.removeItem(at: file) }
        let status = try run(bin + "/pg_dump", [url.libpqURL, "--schema-only", "--no-owner", "--file", file.path], quiet: false)
        guard status == 0 else { throw TestFailure("pg_dump exited with status \(status)") }
        return try String(contentsOf: file, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
            .joined(separator: "\n")
    }

    /// Runs a program and returns its exit status; `quiet` drops its output (psql's notices).
    static func run(_ executable: String, _ arguments: [String], quiet: Bool) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        if quiet { p.standardError = FileHandle.nullDevice }
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}

@Suite struct SessionSettingsTests {
    @Test func everyStatementRunsUnderTheStatementTimeout() async throws {
        try await TestDatabase.with("statement_timeout") { _, url in
            let config = url.clientConfiguration(applicationName: "agentq-worker", statementTimeout: .milliseconds(200))
            let client = PostgresClient(configuration: config, backgroundLogger: TestDatabase.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let setting: String = try await client.scalar("SELECT current_setting('statement_timeout')")
                #expect(setting == "200ms")
                do {
                    try await client.run("SELECT pg_sleep(2)")
                    Issue.record("pg_sleep(2) outlived a 200 ms statement timeout")
                } catch {
                    #expect(sqlState(of: error) == "57014")
                }
            }
        }
    }
}
