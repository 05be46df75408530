import AgentQueue
import AsyncHTTPClient
import Foundation
import Testing

/// A real `agentq worker` process (the built binary), for tests that kill and signal workers.
final class WorkerProcess: @unchecked Sendable {  // Process is used from one test task at a time
    let process = Process()
    let logURL: URL

    init(url: DatabaseURL, arguments: [String] = [], environment: [String: String] = [:]) throws {
        let bin = try agentqBinary()
        process.executableURL = URL(fileURLWithPath: bin)
        // The tests' agents use the mock models unless a test passes `--no-mock` (taken out here).
        let mock = arguments.contains("--no-mock") ? [] : ["--allow-mock-models"]
        process.arguments =
            ["worker", "--database-url", url.libpqURL, "--poll-ms", "100", "--log-level", "warning"] + mock
            + arguments.filter { $0 != "--no-mock" }
        var environment = environment
        if mock.isEmpty { environment[ModelRegistry.allowMockEnvironment] = "0" }
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("agentq-worker-\(UUID()).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the process to exit; returns its status, or nil on timeout.
    func waitForExit(timeout: Duration = .seconds(60)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return process.isRunning ? nil : process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }
}

/// The built `agentq` binary (AGENTQ_BIN, else .build/debug/agentq).
func agentqBinary() throws -> String {
    let bin =
        try ProcessInfo.processInfo.environment["AGENTQ_BIN"]
        ?? ProjectLayout.locate().root.appendingPathComponent(".build/debug/agentq").path
    guard FileManager.default.isExecutableFile(atPath: bin) else {
        throw TestFailure("agentq binary not found at \(bin): run `swift build --product agentq` (scripts/test does)")
    }
    return bin
}

/// Runs `agentq` with `arguments` to its end; its exit status, stdout and stderr.
func runAgentq(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try agentqBinary())
    p.arguments = arguments
    let (out, err) = (Pipe(), Pipe())
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// The body of a GET that must answer 200 (metrics, mock-llm's tool counters).
func httpGet(_ url: String) async throws -> String {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
    #expect(response.status == .ok)
    return String(buffer: try await response.body.collect(upTo: 1 << 20))
}
