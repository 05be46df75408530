import Foundation

/// Where the project's `sql/` migrations and `scripts/` live: `$AGENTQ_ROOT`, else the first folder
/// holding `sql/001_schema.sql`, walking up from the working directory and then from the executable.
public struct ProjectLayout: Sendable {
    public var root: URL

    public var sqlDirectory: URL { root.appendingPathComponent("sql") }
    public var embeddedScript: URL { root.appendingPathComponent("scripts/embedded-pg") }

    public init(root: URL) {
        self.root = root
    }

    public static func locate() throws -> ProjectLayout {
        let env = ProcessInfo.processInfo.environment
        if let root = env["AGENTQ_ROOT"], !root.isEmpty {
            return ProjectLayout(root: URL(fileURLWithPath: root))
        }
        var starts = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            starts.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        for start in starts {
            var dir = start.standardizedFileURL
            while true {
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent("sql/001_schema.sql").path) {
                    return ProjectLayout(root: dir)
                }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        throw AgentQueueError(
            .configuration,
            "cannot find the AgentQueue project (sql/001_schema.sql) above \(starts.map(\.path).joined(separator: " or ")); set AGENTQ_ROOT"
        )
    }
}
