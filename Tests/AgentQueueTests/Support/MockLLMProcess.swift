import AgentQueue
import Foundation
import PostgresNIO

/// A real `agentq mock-llm` process on a free port, so model calls go over real HTTP.
final class MockLLMProcess: @unchecked Sendable {  // Process is used from one test task at a time
    let process = Process()
    let port: Int

    init() async throws {
        process.executableURL = URL(fileURLWithPath: try agentqBinary())
        process.arguments = ["mock-llm", "--port", "0"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line says where it listens: "mock-llm listening on http://127.0.0.1:PORT/v1".
        let line = try await Self.firstLine(of: pipe.fileHandleForReading, timeout: .seconds(20))
        guard let portText = line.split(separator: ":").last?.split(separator: "/").first, let port = Int(portText) else {
            throw TestFailure("mock-llm did not say its port: \(line)")
        }
        self.port = port
    }

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    /// Adds a provider `http` pointing at this server and an agent `remote` using it.
    func install(on client: PostgresClient, agentOptions: String = "{}") async throws {
        try await client.run(
            """
            INSERT INTO agentq.providers (name, kind, base_url, options) VALUES ('http', 'openai', \(baseURL), '{}')
            """)
        try await client.run(
            """
            INSERT INTO agentq.agents (name, model, instructions, options)
            VALUES ('remote', 'http:mock', 'You are a test.', \(agentOptions)::jsonb)
            """)
    }

    private static func firstLine(of handle: FileHandle, timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        var data = Data()
        while ContinuousClock.now < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { try await Task.sleep(for: .milliseconds(20)); continue }
            data.append(chunk)
            if let text = String(data: data, encoding: .utf8), let newline = text.firstIndex(of: "\n") {
                return String(text[..<newline])
            }
        }
        throw TestFailure("mock-llm did not start in time")
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
