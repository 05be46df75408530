import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Replies nobody saves, and the `send` command over a real worker.
extension StreamedGenerationTests {
    @Test func saveMessagesNoneSavesAndStreamsNothing() async throws {
        try await TestDatabase.with("stream_none") { client, url in
            let worker = try WorkerProcess(url: url)
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let job: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(\(thread), '[mock reply="unsaved"] hi', options => '{"storage": {"save_messages": "none"}}')
                """)
            try await eventually(timeout: .seconds(20), "done") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded"
            }
            #expect(try await client.scalar("SELECT agentq.job_result(\(job))->>'text'") == "unsaved")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.messages WHERE thread_id = \(thread)") == 0)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.streams WHERE thread_id = \(thread)") == 0)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.usage WHERE job_id = \(job)") == 1)
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    @Test func theSendCommandPrintsTheStreamedReplyAndFailsWithTheError() async throws {
        try await TestDatabase.with("stream_cli") { client, url in
            let worker = try WorkerProcess(url: url)
            func send(_ prompt: String) throws -> (Int32, String, String) {
                try runAgentq(["send", "--database-url", url.libpqURL, "--timeout", "30", prompt])
            }
            let (ok, out, err) = try send("[mock words=30 tps=100] stream it")
            #expect(ok == 0, "\(err)")
            let final: String = try await client.scalar("SELECT text FROM agentq.messages WHERE role = 'assistant' AND status = 'success'")
            #expect(out == final + "\n")
            #expect(err.hasPrefix("thread: "))
            let (failed, _, reason) = try send("[mock fail=permanent] no")
            #expect(failed == 1)
            #expect(reason.contains("job failed: mock: permanent failure requested by the prompt"))
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    /// A prompt that cannot be enqueued (unknown thread or agent, bad options) fails at once with the
    /// SQL error and leaves nothing behind; a reader that closes the pipe ends the command quietly.
    @Test(.timeLimit(.minutes(1)))
    func theSendCommandFailsAtOnceOnBadInputAndCreatesNothing() async throws {
        try await TestDatabase.with("stream_cli_bad") { client, url in
            func send(_ extra: [String]) throws -> (Int32, String, String) {
                try runAgentq(["send", "--database-url", url.libpqURL, "--timeout", "300"] + extra + ["hello"])
            }
            let (noAgent, _, agentError) = try send(["--agent", "nosuch"])
            #expect(noAgent == 1 && agentError.contains("unknown agent \"nosuch\""), "\(agentError)")
            let (noThread, _, threadError) = try send(["--thread", UUID().uuidString])
            #expect(noThread == 1 && threadError.contains("not found"), "\(threadError)")
            let (badOptions, _, optionsError) = try send(["--options", #"{"priority": "high"}"#])
            #expect(badOptions == 1 && optionsError.contains("priority"), "\(optionsError)")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.threads") == 0, "no thread left behind")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs") == 0)
        }
    }

    /// `agentq chat | head`: a reader that is gone ends the chat quietly (exit 0), never a trap; an
    /// unknown agent is refused before any thread is made.
    @Test(.timeLimit(.minutes(1)))
    func theChatCommandSurvivesAClosedPipeAndRefusesAnUnknownAgent() async throws {
        try await TestDatabase.with("chat_cli_pipe") { client, url in
            let (noAgent, _, agentError) = try runAgentq(["chat", "--database-url", url.libpqURL, "--agent", "nosuch"])
            #expect(noAgent == 1 && agentError.contains("unknown agent"), "\(agentError)")
            let (chat, input, output) = try ChatCommandTests.chat(url)
            chat.standardError = FileHandle.nullDevice
            try output.fileHandleForReading.close()  // the reader is gone before the first line
            try chat.run()
            input.fileHandleForWriting.write(Data("/quit\n".utf8))
            try input.fileHandleForWriting.close()
            chat.waitUntilExit()
            #expect(chat.terminationReason == .exit && chat.terminationStatus == 0)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.jobs") == 0)
        }
    }
}
