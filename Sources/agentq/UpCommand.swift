import AgentQueue
import ArgumentParser
import Foundation

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the whole service on this machine: database (embedded if no URL), migrations, a worker.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var worker: WorkerOptions

    func run() async throws {
        let logger = try database.makeLogger(defaultLevel: "info")
        do {
            let url = try database.resolve()
            let layout = try ProjectLayout.locate()
            let applied = try await withClient(url, statementTimeout: nil, logger: logger) { client in
                try await Migrator(directory: layout.sqlDirectory).migrate(client, logger: logger)
            }
            let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "agentq"
            say(
                """
                AgentQueue is up.
                  database:   \(url)\(applied.isEmpty ? "" : "  (applied migrations \(applied.joined(separator: ", ")))")
                  worker:     concurrency \(worker.concurrency), queues \(worker.queues)   (Ctrl-C stops it gracefully)

                Send a prompt from psql (psql "\(url.libpqURL)"):
                  select agentq.generate(null, 'Hello!');                 -- returns a job id
                  select agentq.job_result(1);                            -- the reply once done
                Or from a shell:
                  \(exe) send "Hello!"
                """)
            // On the embedded database (a machine of one's own) the mock models run, as the README's
            // tour needs; with a database URL they need --allow-mock-models, as `agentq worker` does.
            let embedded = (database.databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"] ?? "").isEmpty
            try await worker.runWorker(url: url, logger: logger, allowMock: embedded)
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}
