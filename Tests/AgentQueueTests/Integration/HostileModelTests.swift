import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Hostile models and inputs against a real worker: a model server that streams forever, sends a
/// 100 MB line or reply, never closes a tool call's arguments, asks for 10,000 calls or nests its
/// arguments 10,000 deep; tool outputs of 50 MB; a mock model on a worker that does not run them.
/// Each job ends with its error kept on it, and another job on the same worker still succeeds
/// (README: Limits).
// Megabytes of hostile streams: run in the second pass of scripts/test with the chaos suite.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["AGENTQ_CHAOS"] == "1")) struct HostileModelTests {
    /// A database with the mock model over HTTP (agent `remote`), a SQL tool `huge` returning 50 MB,
    /// and one worker (`arguments`: extra flags).
    static func withWorker(
        _ name: String, arguments: [String] = [],
        _ body: @Sendable @escaping (PostgresClient, WorkerProcess) async throws -> Void
    ) async throws {
        try await TestDatabase.with(name) { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            try await client.run(
                """
                CREATE FUNCTION public.huge(args jsonb, ctx jsonb) RETURNS jsonb LANGUAGE sql
                AS $$ SELECT to_jsonb(repeat('x', 50000000)) $$
                """)
            try await client.run(
                """
                INSERT INTO agentq.tools (name, description, parameters, kind, target) VALUES
                  ('huge', 'Returns 50 MB', '{"type": "object"}', 'sql', 'public.huge'),
                  ('ask', 'Asks the app', '{"type": "object"}', 'client', null)
                """)
            let worker = try WorkerProcess(url: url, arguments: arguments)
            try await body(client, worker)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0, "\(worker.log.suffix(2000))")
        }
    }

    /// Enqueues on the `remote` agent with `options` (one attempt, so a retry shows as the failure).
    static func generate(_ client: PostgresClient, _ prompt: String, agent: String = "remote", options: String = "{}") async throws -> Int64
    {
        try await client.scalar(
            """
            SELECT agentq.generate(null, \(prompt), \(agent), options => '{"max_attempts": 1}'::jsonb || \(options)::jsonb)
            """)
    }

    /// Waits for the job to finish; its status and error.
    static func finished(_ client: PostgresClient, _ job: Int64, timeout: Duration = .seconds(60)) async throws -> (String, String) {
        try await eventually(timeout: timeout, "job \(job) finished") {
            let status: String = try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)")
            return ["succeeded", "failed", "cancelled"].contains(status)
        }
        let rows = try await client.rows(
            "SELECT status, coalesce(last_error, ''), coalesce(result->>'text', '') FROM agentq.jobs WHERE id = \(job)",
            as: (String, String, String).self)
        return (rows[0].0, rows[0].1.isEmpty ? rows[0].2 : rows[0].1)
    }

    /// Runs the hostile prompt with a healthy job beside it on the same worker: the hostile job ends
    /// `status` with `error` in its error (or text), and the healthy one succeeds.
    static func expectContained(
        _ name: String, _ prompt: String, options: String = "{}", status: String = "failed", error: String
    ) async throws {
        try await withWorker(name) { client, _ in
            let hostile = try await generate(client, prompt, options: options)
            let healthy = try await generate(client, "[mock tps=20 words=10] a healthy job beside it")
            let (hostileStatus, text) = try await finished(client, hostile)
            #expect(hostileStatus == status, "\(text.prefix(300))")
            #expect(text.contains(error), "\(text.prefix(300))")
            #expect(try await finished(client, healthy).0 == "succeeded")
            #expect(try await finished(client, try await generate(client, "and one after it")).0 == "succeeded")
        }
    }

    @Test func aStreamThatNeverEndsIsStoppedByTheJobsTimeBudget() async throws {
        try await Self.expectContained(
            "hostile_endless", "[mock hostile=endless] go on", options: #"{"timeout_ms": 1500}"#, error: "timed out")
    }

    @Test func aHundredMegabyteLineIsCutAtTheSSELineCap() async throws {
        try await Self.expectContained(
            "hostile_line", "[mock hostile=long_line] one line", error: "a line over \(Limits.sseLineBytes) bytes")
    }

    @Test func aHundredMegabyteReplyIsCutAtTheReplyCap() async throws {
        try await Self.expectContained(
            "hostile_reply", "[mock hostile=big_reply] talk", error: "reply is over \(Limits.replyTextBytes) bytes")
    }

    @Test func toolArgumentsThatNeverCloseAreCutAtTheArgumentsCap() async throws {
        try await Self.expectContained(
            "hostile_args", "[mock tool=huge hostile=open_args] call", options: #"{"tools": ["huge"]}"#,
            error: "arguments over \(Limits.toolArgumentsBytes) bytes")
    }

    @Test func tenThousandToolCallsInOneStepAreRefused() async throws {
        try await Self.expectContained(
            "hostile_calls", "[mock tool=huge hostile=many_calls] call", options: #"{"tools": ["huge"]}"#,
            error: "more than \(Limits.toolCallsPerStep) tool calls")
    }

    /// Arguments nested 10,000 deep get an error result the model reads; the job goes on.
    @Test func argumentsNestedTenThousandDeepGetAnErrorResult() async throws {
        try await Self.expectContained(
            "hostile_deep", "[mock tool=huge hostile=deep_args] call", options: #"{"tools": ["huge"]}"#, status: "succeeded",
            error: "nested more than \(Limits.jsonDepth) levels deep")
    }

    /// A SQL tool returning 50 MB fails as a call (its result says why); the model goes on.
    @Test func aFiftyMegabyteSQLToolOutputIsAnErrorResult() async throws {
        try await Self.expectContained(
            "hostile_sqlout", "[mock tool=huge] call", options: #"{"tools": ["huge"]}"#, status: "succeeded",
            error: "over the limit of \(Limits.toolOutputBytes) for a tool output")
    }

    /// A client's 50 MB output is refused by submit_tool_outputs (54000); a small one resumes the job.
    @Test func aFiftyMegabyteClientOutputIsRefused() async throws {
        try await Self.withWorker("hostile_submit") { client, _ in
            let job = try await Self.generate(client, "[mock tool=ask] ask the app", options: #"{"tools": ["ask"]}"#)
            try await eventually(timeout: .seconds(30), "parked") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "requires_action"
            }
            let message = await expectError(
                client,
                """
                SELECT agentq.submit_tool_outputs(\(job), jsonb_build_array(jsonb_build_object(
                    'tool_call_id', 'call_mock_1_1', 'output', repeat('x', 50000000))))
                """, "54000")
            #expect(message.contains("over the limit of \(Limits.toolOutputBytes)"), "\(message)")
            try await client.run(
                """
                SELECT agentq.submit_tool_outputs(\(job), '[{"tool_call_id": "call_mock_1_1", "output": "fine"}]')
                """)
            #expect(try await Self.finished(client, job).0 == "succeeded")
        }
    }

    /// Without `--allow-mock-models` a job on a mock model fails with a clear error; a job on a real
    /// (HTTP) provider on the same worker succeeds.
    @Test func aWorkerWithoutTheFlagRunsNoMockModels() async throws {
        try await Self.withWorker("hostile_nomock", arguments: ["--no-mock"]) { client, _ in
            let mocked = try await Self.generate(client, "hello", agent: "default")
            let remote = try await Self.generate(client, "hello over HTTP")
            let (status, error) = try await Self.finished(client, mocked)
            #expect(status == "failed" && error.contains("--allow-mock-models"), "\(error)")
            #expect(try await Self.finished(client, remote).0 == "succeeded")
        }
    }

    /// Numbers and nesting are checked on write (thread agent_options as job options); a row written
    /// past the checks (by the owner, triggers off) is clamped when read and its job still succeeds.
    @Test func outOfRangeOptionsAreRefusedOnWriteAndClampedOnRead() async throws {
        try await Self.withWorker("hostile_numbers") { client, _ in
            for options in [#"{"max_steps": 1e19}"#, #"{"context": {"recent_messages": 1e19}}"#, #"{"timeout_ms": -1}"#] {
                let message = await expectError(
                    client, "SELECT agentq.create_thread(metadata => jsonb_build_object('agent_options', \(options)::jsonb))", "22023")
                #expect(message.contains("must be"), "\(message)")
            }
            await expectError(client, #"SELECT agentq.generate(null, 'x', options => '{"context": {"search": {"limit": 1e19}}}')"#, "22023")
            let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            let nested = await expectError(
                client,
                "SELECT agentq.generate(null, 'x', options => jsonb_build_object('schema', jsonb_build_object('x', \(deep)::jsonb)))",
                "22023")
            #expect(nested.contains("nested more than 128 levels"))
            // Deep JSON elsewhere in a thread is stored and read without harm.
            let deepThread: UUID = try await client.scalar(
                "SELECT agentq.create_thread(metadata => jsonb_build_object('deep', \(deep)::jsonb))")
            let onDeep: Int64 = try await client.scalar(
                #"SELECT agentq.generate(\#(deepThread), 'on a deep thread', 'remote', options => '{"max_attempts": 1}')"#)
            #expect(try await Self.finished(client, onDeep).0 == "succeeded")
            try await client.run("ALTER TABLE agentq.threads DISABLE TRIGGER threads_check_limits")
            let thread: UUID = try await client.scalar(
                """
                SELECT agentq.create_thread(metadata => '{"agent_options": {"max_steps": 9e18, "max_retries": 9e18,
                    "timeout_ms": 9e18, "max_tokens": 9e18, "context": {"recent_messages": 9e18}}}')
                """)
            try await client.run("ALTER TABLE agentq.threads ENABLE TRIGGER threads_check_limits")
            let job: Int64 = try await client.scalar(
                #"SELECT agentq.generate(\#(thread), 'still fine', 'remote', options => '{"max_attempts": 1}')"#)
            let (status, error) = try await Self.finished(client, job)
            #expect(status == "succeeded", "\(error)")
        }
    }
}
