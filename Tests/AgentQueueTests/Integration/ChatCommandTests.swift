import AgentQueue
import Foundation
import Synchronization
import Testing

/// `agentq chat` as a person uses it: prompts on stdin, replies streamed to stdout, Ctrl-C (SIGINT)
/// stopping the reply being written but not the program.
@Suite struct ChatCommandTests {
    @Test func ctrlCCancelsTheRunningReplyAndTheConversationGoesOn() async throws {
        try await TestDatabase.with("cli_chat") { client, url in
            let worker = try WorkerProcess(url: url)
            let (chat, input, output) = try Self.chat(url)
            chat.standardError = output
            let seen = Mutex("")
            output.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                seen.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
            try chat.run()
            defer { if chat.isRunning { kill(chat.processIdentifier, SIGKILL) } }
            func type(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }
            func waitFor(_ text: String) async throws {
                try await eventually(timeout: .seconds(20), "chat output \"\(text)\"") { seen.withLock { $0.contains(text) } }
            }
            try await waitFor("default> ")
            type("[mock reply=\"first answer\"] hello")
            try await waitFor("first answer")
            type("[mock words=300 tps=20] a long one")
            try await waitFor("alpha bravo")
            kill(chat.processIdentifier, SIGINT)
            try await waitFor("[cancelled: cancelled]")
            type("/history")
            try await waitFor("assistant [failed]: alpha")
            type("[mock reply=\"still here\"] again")
            try await waitFor("still here")
            type("/quit")
            try await eventually(timeout: .seconds(10), "chat exits") { !chat.isRunning }
            #expect(chat.terminationStatus == 0, "\(seen.withLock { $0 })")
            output.fileHandleForReading.readabilityHandler = nil
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'cancelled'") == 1)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded'") == 2)
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    /// An `agentq chat` process on `url` with pipes for stdin and stdout (not started).
    static func chat(_ url: DatabaseURL) throws -> (process: Process, input: Pipe, output: Pipe) {
        let chat = Process()
        chat.executableURL = URL(fileURLWithPath: try agentqBinary())
        chat.arguments = ["chat", "--database-url", url.libpqURL]
        let (input, output) = (Pipe(), Pipe())
        chat.standardInput = input
        chat.standardOutput = output
        return (chat, input, output)
    }
}
