import AgentQueue
import ArgumentParser
import Foundation

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the sql/ migrations (idempotent; safe when several run at once).")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Folder of the migrations (default: the project's sql/).")
    var sqlDir: String?

    func run() async throws {
        let logger = try database.makeLogger()
        do {
            let url = try database.resolve()
            let dir = try sqlDir.map { URL(fileURLWithPath: $0) } ?? ProjectLayout.locate().sqlDirectory
            let applied = try await withClient(url, statementTimeout: nil, logger: logger) { client in
                try await Migrator(directory: dir).migrate(client, logger: logger)
            }
            print(applied.isEmpty ? "schema is up to date" : "applied migrations: \(applied.joined(separator: ", "))")
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}
