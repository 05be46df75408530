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
                    group.addTask {   // four separate pools, as four processes would have
                        try await TestDatabase.withClient(url) { c in try await Migrator(directory: dir).migrate(c, logger: TestDatabase.logger) }
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
                    p.arguments = [url.libpqURL, "-q", "-v", "ON_ERROR_STOP=1", "-f",
                                   layout.sqlDirectory.appendingPathComponent("\(file.version)_\(file.name).sql").path]
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
            let edited = copy.appendingPathComponent("002_api.sql")
            try (String(contentsOf: edited, encoding: .utf8) + "\n-- edited\n").write(to: edited, atomically: true, encoding: .utf8)
            do {
                try await Migrator(directory: copy).migrate(client, logger: TestDatabase.logger)
                Issue.record("a changed migration was accepted")
            } catch let error as AgentQueueError {
                #expect(error.code == .migration)
                #expect(error.message.contains("002_api.sql changed after it was applied"))
            }
        }
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
