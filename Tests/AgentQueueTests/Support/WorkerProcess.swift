import AgentQueue
import Foundation

/// A real `agentq worker` process (the built binary), for tests that kill and signal workers.
final class WorkerProcess: @unchecked Sendable {   // Process is used from one test task at a time
    let process = Process()
    let logURL: URL

    init(url: DatabaseURL, arguments: [String] = []) throws {
        let root = try ProjectLayout.locate().root
        let bin = ProcessInfo.processInfo.environment["AGENTQ_BIN"] ?? root.appendingPathComponent(".build/debug/agentq").path
        guard FileManager.default.isExecutableFile(atPath: bin) else {
            throw TestFailure("agentq binary not found at \(bin): run `swift build --product agentq` (scripts/test does)")
        }
        process.executableURL = URL(fileURLWithPath: bin)
        process.arguments = ["worker", "--database-url", url.libpqURL, "--poll-ms", "100", "--log-level", "warning"] + arguments
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("agentq-worker-\(UUID()).log")
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
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
