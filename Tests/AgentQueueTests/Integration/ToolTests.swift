import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Tools end to end: a real worker process, the model over real HTTP (`agentq mock-llm`), SQL tools
/// writing real rows, client tools and approvals answered from SQL.
@Suite struct ToolTests {
    /// A SQL tool that writes an order (and can sleep or raise first), a client tool, an approval tool.
    static func install(_ client: PostgresClient, mock: MockLLMProcess) async throws {
        try await mock.install(on: client, agentOptions: #"{"log_raw": true}"#)
        try await client.run("CREATE TABLE public.orders (id serial PRIMARY KEY, item text NOT NULL, job bigint, call text)")
        try await client.run(
            """
            CREATE FUNCTION public.place_order(args jsonb, ctx jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
            DECLARE n int;
            BEGIN
                PERFORM pg_sleep(coalesce((args->>'sleep')::float, 0));
                IF args->>'item' = 'boom' THEN RAISE EXCEPTION 'out of boom' USING errcode = '22023'; END IF;
                INSERT INTO public.orders (item, job, call) VALUES (args->>'item', (ctx->>'job_id')::bigint, ctx->>'tool_call_id')
                RETURNING id INTO n;
                RETURN jsonb_build_object('order', n, 'item', args->>'item');
            END $$
            """)
        let order =
            #"{"type": "object", "properties": {"item": {"type": "string"}, "sleep": {"type": "number"}}, "required": ["item"], "additionalProperties": false}"#
        try await client.run(
            """
            INSERT INTO agentq.tools (name, description, parameters, kind, target, options) VALUES
              ('place_order', 'Places an order', \(order)::jsonb, 'sql', 'public.place_order', '{"timeout_ms": 3000}'),
              ('approve_order', 'Places an order once a person approves', \(order)::jsonb, 'sql', 'public.place_order', '{"needs_approval": true}'),
              ('ask_size', 'Asks the user', '{"type": "object", "properties": {"q": {"type": "string"}}}', 'client', null, '{}')
            """)
    }

    static func withSetup(_ name: String, _ body: @Sendable @escaping (PostgresClient, DatabaseURL, MockLLMProcess) async throws -> Void)
        async throws
    {
        try await TestDatabase.with(name) { client, url in
            let mock = try await MockLLMProcess()
            try await install(client, mock: mock)
            try await body(client, url, mock)
        }
    }

    static func generate(
        _ client: PostgresClient, _ prompt: String, tools: [String], thread: UUID? = nil,
        extra: String = ""
    ) async throws -> Int64 {
        let options = #"{"tools": ["# + tools.map { "\"\($0)\"" }.joined(separator: ", ") + "]" + extra + "}"
        return try await client.scalar("SELECT agentq.generate(\(thread), \(prompt), 'remote', options => \(options)::jsonb)")
    }

    static func waitFor(_ client: PostgresClient, _ job: Int64, _ status: String) async throws {
        try await eventually(timeout: .seconds(60), "job \(job) \(status)") {
            let now: String = try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)")
            if ["failed", "cancelled"].contains(now) && now != status {
                let error: String? = try await client.scalar("SELECT last_error FROM agentq.jobs WHERE id = \(job)")
                throw TestFailure("job \(job) is \(now): \(error ?? "")")
            }
            return now == status
        }
    }

    @Test func aSQLToolWritesOnceAndItsResultReachesTheModel() async throws {
        try await Self.withSetup("tools_sql") { client, url, _ in
            let worker = try WorkerProcess(url: url)
            let job = try await Self.generate(client, #"buy [mock tool=place_order args='{"item": "tea"}']"#, tools: ["place_order"])
            try await Self.waitFor(client, job, "succeeded")
            #expect(try await client.scalar("SELECT count(*)::int FROM public.orders WHERE job = \(job)") == 1)
            let text: String = try await client.scalar("SELECT result->>'text' FROM agentq.jobs WHERE id = \(job)")
            #expect(text == #"place_order returned: {"item":"tea","order":1}"#)
            // The second request carried the call and its result, paired.
            let second: String = try await client.scalar(
                """
                SELECT request::text FROM agentq.llm_calls WHERE job_id = \(job) ORDER BY id OFFSET 1 LIMIT 1
                """)
            let messages = try JSONValue.parse(second)["messages"]?.arrayValue ?? []
            #expect(messages.suffix(2).first?["tool_calls"]?.arrayValue?.first?["id"]?.stringValue == "call_mock_1_1")
            #expect(messages.last?["role"]?.stringValue == "tool" && messages.last?["tool_call_id"]?.stringValue == "call_mock_1_1")
            #expect(messages.last?["content"]?.stringValue == #"{"item":"tea","order":1}"#)
            // Messages: prompt, the call (step 1), its result (step 2), the answer (step 3); the call row is done.
            let rows = try await client.rows(
                """
                SELECT role, tool, status FROM agentq.messages WHERE thread_id = (SELECT thread_id FROM agentq.jobs WHERE id = \(job))
                 ORDER BY ord, step
                """, as: (String, Bool, String).self)
            #expect(rows.map(\.0) == ["user", "assistant", "tool", "assistant"] && rows.map(\.1) == [false, true, true, false])
            #expect(rows.allSatisfy { $0.2 == "success" })
            #expect(try await client.scalar("SELECT status FROM agentq.tool_calls WHERE job_id = \(job)") == "done")
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    /// The worker is killed before the tool call, inside the SQL tool's transaction, and after it
    /// committed: every job still ends with exactly one order and one answer.
    @Test(arguments: ["before the call", "inside the tool", "after the tool committed"])
    func aSQLToolRunsExactlyOnceWhenTheWorkerIsKilled(_ point: String) async throws {
        try await Self.withSetup("tools_kill") { client, url, _ in
            // Windows wide enough for a loaded machine to see the kill point before it passes: the tool
            // sleeps 2.5 s (its timeout is 3 s), and each model call takes 3 s.
            let args = point == "inside the tool" ? #"{"item": "tea", "sleep": 2.5}"# : #"{"item": "tea"}"#
            let job = try await Self.generate(client, "buy [mock tool=place_order args='\(args)' delay_ms=3000]", tools: ["place_order"])
            let doomed = try WorkerProcess(url: url, arguments: ["--lease", "2"])
            try await eventually(timeout: .seconds(30), "the kill point") {
                switch point {
                case "before the call":
                    return try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE id = \(job) AND status = 'running'") == 1
                case "inside the tool":
                    return try await client.scalar(
                        """
                        SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE '%run_sql_tool%' AND state = 'active' AND pid <> pg_backend_pid()
                          AND datname = current_database()
                        """) == 1
                default:
                    return try await client.scalar("SELECT count(*)::int FROM public.orders") == 1
                }
            }
            doomed.signal(SIGKILL)
            _ = await doomed.waitForExit()
            #expect(try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "running")
            let rescuer = try WorkerProcess(url: url)
            try await Self.waitFor(client, job, "succeeded")
            #expect(try await client.scalar("SELECT count(*)::int FROM public.orders") == 1, "the tool ran once (\(point))")
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.messages WHERE job_id = \(job) AND role = 'tool' AND status = 'success'
                    """) == 1)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.messages WHERE job_id = \(job) AND role = 'assistant' AND status = 'success' AND NOT tool
                    """) == 1)
            #expect(try await client.scalar("SELECT attempt FROM agentq.jobs WHERE id = \(job)") == 2)
            rescuer.signal(SIGTERM)
            #expect(await rescuer.waitForExit() == 0)
        }
    }

    @Test func clientToolsAndApprovalsRoundTrip() async throws {
        try await Self.withSetup("tools_client") { client, url, _ in
            let worker = try WorkerProcess(url: url)
            // A client tool: the job waits with the call in its result, then continues with the output.
            let askThread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let seen = try await StreamedGenerationTests.events(client, thread: askThread, until: { $0.type == "job.requires_action" }) {
                _ = try await Self.generate(
                    client, #"size? [mock tool=ask_size args='{"q": "which size?"}']"#, tools: ["ask_size"],
                    thread: askThread)
            }
            // The step's stream finishes before the job waits, and the event says so.
            let types = seen.map(\.type)
            #expect(types.last == "job.requires_action")
            #expect(types.contains("stream.finished") && types.firstIndex(of: "stream.finished")! < types.count - 1)
            let asked: Int64 = try await client.scalar("SELECT id FROM agentq.jobs WHERE thread_id = \(askThread)")
            try await Self.waitFor(client, asked, "requires_action")
            let pending: String = try await client.scalar("SELECT (agentq.job_result(\(asked))->'pending_tool_calls')::text")
            #expect(
                try JSONValue.parse(pending)
                    == JSONValue.parse(
                        #"[{"tool_call_id": "call_mock_1_1", "tool_name": "ask_size", "args": {"q": "which size?"}, "kind": "client"}]"#))
            await expectError(
                client, "SELECT agentq.submit_tool_outputs(\(asked), '[{\"tool_call_id\": \"nope\", \"output\": 1}]')", "P0002")
            await expectError(client, "SELECT agentq.submit_tool_outputs(\(asked), '{\"tool_call_id\": \"call_mock_1_1\"}')", "22023")
            await expectError(client, "SELECT agentq.approve_tool_call(\(asked), 'call_mock_1_1', true)", "55000")
            try await client.run(
                "SELECT agentq.submit_tool_outputs(\(asked), '[{\"tool_call_id\": \"call_mock_1_1\", \"output\": \"large\"}]')")
            try await Self.waitFor(client, asked, "succeeded")
            #expect(try await client.scalar("SELECT result->>'text' FROM agentq.jobs WHERE id = \(asked)") == "ask_size returned: large")
            await expectError(
                client, "SELECT agentq.submit_tool_outputs(\(asked), '[{\"tool_call_id\": \"call_mock_1_1\", \"output\": 1}]')", "55000")

            // Two calls: the job waits until both are answered; answering one twice is refused.
            let twice = try await Self.generate(
                client, #"sizes? [mock tool=ask_size,ask_size args='[{"q": "a"}, {"q": "b"}]']"#,
                tools: ["ask_size"])
            try await Self.waitFor(client, twice, "requires_action")
            try await client.run(
                "SELECT agentq.submit_tool_outputs(\(twice), '[{\"tool_call_id\": \"call_mock_1_1\", \"output\": \"S\"}]')")
            #expect(try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(twice)") == "requires_action")
            await expectError(
                client, "SELECT agentq.submit_tool_outputs(\(twice), '[{\"tool_call_id\": \"call_mock_1_1\", \"output\": \"M\"}]')", "23505"
            )
            try await client.run(
                "SELECT agentq.submit_tool_outputs(\(twice), '[{\"tool_call_id\": \"call_mock_1_2\", \"output\": \"L\"}]')")
            try await Self.waitFor(client, twice, "succeeded")

            // An approved call runs; a denied one reaches the model as an error with the reason.
            let approved = try await Self.generate(
                client, #"buy [mock tool=approve_order args='{"item": "cake"}']"#, tools: ["approve_order"])
            try await Self.waitFor(client, approved, "requires_action")
            #expect(try await client.scalar("SELECT count(*)::int FROM public.orders") == 0, "nothing runs before approval")
            try await client.run("SELECT agentq.approve_tool_call(\(approved), 'call_mock_1_1', true)")
            await expectError(client, "SELECT agentq.approve_tool_call(\(approved), 'call_mock_1_1', true)", "55000")
            try await Self.waitFor(client, approved, "succeeded")
            #expect(try await client.scalar("SELECT count(*)::int FROM public.orders WHERE item = 'cake'") == 1)

            let denied = try await Self.generate(client, #"buy [mock tool=approve_order args='{"item": "pie"}']"#, tools: ["approve_order"])
            try await Self.waitFor(client, denied, "requires_action")
            try await client.run("SELECT agentq.approve_tool_call(\(denied), 'call_mock_1_1', false, 'too expensive')")
            try await Self.waitFor(client, denied, "succeeded")
            #expect(
                try await client.scalar("SELECT result->>'text' FROM agentq.jobs WHERE id = \(denied)")
                    == #"approve_order returned: {"error":"denied: too expensive"}"#)
            #expect(try await client.scalar("SELECT count(*)::int FROM public.orders WHERE item = 'pie'") == 0)

            // Left unanswered, a new generation on the thread supersedes the parked job.
            let parked = try await Self.generate(client, #"buy [mock tool=approve_order args='{"item": "jam"}']"#, tools: ["approve_order"])
            try await Self.waitFor(client, parked, "requires_action")
            let thread: UUID = try await client.scalar("SELECT thread_id FROM agentq.jobs WHERE id = \(parked)")
            let next: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'never mind', 'remote')")
            #expect(try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(parked)") == "cancelled")
            try await Self.waitFor(client, next, "succeeded")
            let result: String = try await client.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(parked)")
            #expect(result.contains("denied: a new generation started"))
            // The superseded call and its denial stay paired in the next request's context.
            let request: String = try await client.scalar("SELECT request::text FROM agentq.llm_calls WHERE job_id = \(next)")
            let roles = (try JSONValue.parse(request)["messages"]?.arrayValue ?? []).compactMap { $0["role"]?.stringValue }
            #expect(roles == ["system", "user", "assistant", "tool", "user"])
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func badCallsThrowingToolsAndTimeoutsBecomeErrorResults() async throws {
        try await Self.withSetup("tools_errors") { client, url, _ in
            let worker = try WorkerProcess(url: url)
            let cases: [(String, String)] = [
                (#"{"qty": 2}"#, "invalid arguments: $.item is required; $.qty is not allowed (additionalProperties is false)"),
                (#"{"item": 7}"#, "invalid arguments: $.item must be string, got number"),
                (#"{"item": "boom"}"#, "out of boom"),
                (#"{"item": "slow", "sleep": 5}"#, "statement timeout")
            ]
            for (args, expected) in cases {
                let job = try await Self.generate(client, "buy [mock tool=place_order args='\(args)']", tools: ["place_order"])
                try await Self.waitFor(client, job, "succeeded")
                let text: String = try await client.scalar("SELECT result->>'text' FROM agentq.jobs WHERE id = \(job)")
                #expect(text.contains(expected), "\(args): \(text)")
                #expect(try await client.scalar("SELECT is_error FROM agentq.tool_calls WHERE job_id = \(job)"))
            }
            #expect(try await client.scalar("SELECT count(*)::int FROM public.orders") == 0, "failed calls wrote nothing")
            // A tool the model invents, and a job naming a tool that does not exist.
            let invented = try await Self.generate(client, "x [mock tool=nope]", tools: ["place_order"], extra: "")
            try await Self.waitFor(client, invented, "succeeded")
            #expect(
                try await client.scalar("SELECT count(*)::int FROM agentq.tool_calls WHERE job_id = \(invented)") == 0,
                "a tool that is not offered is not called")
            let unknown = try await Self.generate(client, "x", tools: ["no_such_tool"])
            try await eventually(timeout: .seconds(30), "unknown tool fails") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(unknown)") == "failed"
            }
            #expect(
                try await client.scalar("SELECT last_error FROM agentq.jobs WHERE id = \(unknown)")
                    == #"unknown tool "no_such_tool" (not in agentq.tools and not registered on this worker)"#)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

}
