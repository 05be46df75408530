import AgentQueue
import Foundation

/// A PostgreSQL server of the test's own (its own data folder and port, the embedded binaries),
/// which the test restarts and stops at will. Made by `scripts/embedded-pg` with AGENTQ_HOME and
/// AGENTQ_PG_PORT of its own; `destroy()` removes it.
final class ChaosServer: @unchecked Sendable {  // used from one test task at a time
    let home: URL
    let port: Int
    let url: DatabaseURL
    private let script: String
    private let packages: String

    init() throws {
        let layout = try ProjectLayout.locate()
        script = layout.embeddedScript.path
        let env = ProcessInfo.processInfo.environment
        packages = env["AGENTQ_PG_PKG"] ?? layout.root.appendingPathComponent(".agentq/pg-pkg").path
        home = URL(fileURLWithPath: "/tmp/agentq-chaos-\(UUID().uuidString.prefix(8))")
        port = Int.random(in: 55000...59999)
        let printed = try Self.run(script, ["start"], home: home, port: port, packages: packages)
        guard let line = printed.split(separator: "\n").last(where: { $0.hasPrefix("postgres") }) else {
            throw TestFailure("embedded-pg start printed no URL: \(printed)")
        }
        url = try DatabaseURL(String(line))
    }

    /// Stops the server (`fast` or `immediate`), keeps it down for `down`, starts it again.
    func restart(_ mode: String, down: Duration) throws {
        let seconds = String(format: "%.2f", Double(down.components.seconds) + Double(down.components.attoseconds) / 1e18)
        _ = try Self.run(script, ["restart", mode, seconds], home: home, port: port, packages: packages)
    }

    func destroy() {
        _ = try? Self.run(script, ["destroy"], home: home, port: port, packages: packages)
        try? FileManager.default.removeItem(at: home)
    }

    /// Runs the script through `system(3)`, which reaps its child itself: Foundation's `Process`
    /// left this script's bash unreaped (and `waitUntilExit` waiting) once pg_ctl had started the server.
    private static func run(_ script: String, _ arguments: [String], home: URL, port: Int, packages: String) throws -> String {
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("embedded-pg-\(UUID()).out")
        defer { try? FileManager.default.removeItem(at: outputFile) }
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command =
            "AGENTQ_HOME=\(quoted(home.path)) AGENTQ_PG_PORT=\(port) AGENTQ_PG_PKG=\(quoted(packages)) /bin/bash "
            + ([script] + arguments).map(quoted).joined(separator: " ") + " > \(quoted(outputFile.path)) 2>&1 < /dev/null"
        let status = system(command)
        let text = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw TestFailure("embedded-pg \(arguments.joined(separator: " ")) exited \(status): \(text)")
        }
        return text
    }
}
