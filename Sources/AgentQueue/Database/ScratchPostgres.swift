import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A PostgreSQL server of its own (data folder in /tmp, a free port, the project's installed
/// binaries), made by scripts/embedded-pg, for the soak bench and the chaos tests, which restart it
/// at will without disturbing any other database. `destroy()` removes it.
public struct ScratchPostgres: Sendable {
    public let home: URL
    public let port: Int
    public let url: DatabaseURL
    private let script: String
    private let packages: String

    /// `packages`: the installed binaries (default: AGENTQ_PG_PKG, else the project's .agentq/pg-pkg).
    public init(name: String) throws {
        let layout = try ProjectLayout.locate()
        script = layout.embeddedScript.path
        packages =
            ProcessInfo.processInfo.environment["AGENTQ_PG_PKG"] ?? layout.root.appendingPathComponent(".agentq/pg-pkg").path
        home = URL(fileURLWithPath: "/tmp/agentq-\(name)-\(UUID().uuidString.prefix(8))")
        port = Self.freePort()
        let printed = try Self.run(script, ["start"], home: home, port: port, packages: packages)
        guard let line = printed.split(separator: "\n").last(where: { $0.hasPrefix("postgres") }) else {
            throw AgentQueueError(.embeddedDatabase, "embedded-pg start printed no URL: \(printed)")
        }
        url = try DatabaseURL(String(line))
    }

    /// Stops the server (`fast` or `immediate`), keeps it down for `down`, starts it again.
    public func restart(_ mode: String, down: Duration) throws {
        let seconds = String(format: "%.2f", Double(down.components.seconds) + Double(down.components.attoseconds) / 1e18)
        _ = try Self.run(script, ["restart", mode, seconds], home: home, port: port, packages: packages)
    }

    /// Stops the server and deletes its folder.
    public func destroy() {
        _ = try? Self.run(script, ["destroy"], home: home, port: port, packages: packages)
        try? FileManager.default.removeItem(at: home)
    }

    /// Runs the script through `system(3)`, which reaps its child itself: Foundation's `Process` can
    /// leave the script's bash unreaped (and `waitUntilExit` waiting) once pg_ctl has started the server.
    private static func run(_ script: String, _ arguments: [String], home: URL, port: Int, packages: String) throws -> String {
        let outputFile = home.deletingLastPathComponent().appendingPathComponent("\(home.lastPathComponent)-\(UUID()).out")
        defer { try? FileManager.default.removeItem(at: outputFile) }
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command =
            "AGENTQ_HOME=\(quoted(home.path)) AGENTQ_PG_PORT=\(port) AGENTQ_PG_PKG=\(quoted(packages)) /bin/bash "
            + ([script] + arguments).map(quoted).joined(separator: " ") + " > \(quoted(outputFile.path)) 2>&1 < /dev/null"
        let status = system(command)
        let text = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw AgentQueueError(.embeddedDatabase, "embedded-pg \(arguments.joined(separator: " ")) exited \(status): \(text)")
        }
        return text
    }

    /// A port in 55000-59999 that nothing listens on now (a bind to it succeeds).
    private static func freePort() -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 55000...59999)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        return Int.random(in: 55000...59999)
    }
}
