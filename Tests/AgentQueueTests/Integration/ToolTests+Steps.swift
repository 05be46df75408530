import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Tool steps: parallel calls, tool-set precedence and max_steps; HTTP tools and their allow-list.
extension ToolTests {
    @Test func parallelCallsPrecedenceAndMaxSteps() async throws {
        try await Self.withSetup("tools_loop") { client, url, _ in
            try await client.run(
                """
                INSERT INTO agentq.tools (name, description, parameters, kind, target) VALUES
                  ('other', 'Another', '{"type": "object"}', 'sql', 'public.place_order'),
                  ('third', 'A third', '{"type": "object"}', 'sql', 'public.place_order')
                """)
            let worker = try WorkerProcess(url: url)
            // Two calls in one step: both run in the step's transaction, both results follow the call.
            let both = try await Self.generate(
                client, #"two [mock tool=place_order,other args='[{"item": "a"}, {"item": "b"}]']"#,
                tools: ["place_order", "other"])
            try await Self.waitFor(client, both, "succeeded")
            #expect(try await client.scalar("SELECT string_agg(item, ',' ORDER BY item) FROM public.orders WHERE job = \(both)") == "a,b")
            let request: String = try await client.scalar(
                "SELECT request::text FROM agentq.llm_calls WHERE job_id = \(both) ORDER BY id DESC LIMIT 1")
            let messages = try JSONValue.parse(request)["messages"]?.arrayValue ?? []
            #expect(messages.suffix(3).compactMap { $0["role"]?.stringValue } == ["assistant", "tool", "tool"])
            #expect(messages.suffix(2).compactMap { $0["tool_call_id"]?.stringValue } == ["call_mock_1_1", "call_mock_1_2"])

            // Precedence: the job's tools, else the thread's, else the agent's.
            try await client.run("UPDATE agentq.agents SET tools = '{third}' WHERE name = 'remote'")
            let thread: UUID = try await client.scalar(
                """
                SELECT agentq.create_thread(metadata => '{"agent_options": {"tools": ["other"]}}')
                """)
            func offered(_ job: Int64) async throws -> [String] {
                try await Self.waitFor(client, job, "succeeded")
                let r: String = try await client.scalar(
                    "SELECT request::text FROM agentq.llm_calls WHERE job_id = \(job) ORDER BY id LIMIT 1")
                return (try JSONValue.parse(r)["tools"]?.arrayValue ?? []).compactMap { $0["function"]?["name"]?.stringValue }
            }
            #expect(
                try await offered(
                    client.scalar("SELECT agentq.generate(\(thread), 'a', 'remote', options => '{\"tools\": [\"place_order\"]}')")) == [
                        "place_order"
                    ])
            #expect(try await offered(client.scalar("SELECT agentq.generate(\(thread), 'b', 'remote')")) == ["other"])
            #expect(try await offered(client.scalar("SELECT agentq.generate(null, 'c', 'remote')")) == ["third"])

            // max_steps bounds the loop: two steps of calls, then a call offering no tools answers.
            let looping = try await Self.generate(
                client, #"loop [mock tool=place_order args='{"item": "x"}' steps=10]"#,
                tools: ["place_order"], extra: #", "max_steps": 2"#)
            try await Self.waitFor(client, looping, "succeeded")
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.tool_calls WHERE job_id = \(looping)") == 2)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.llm_calls WHERE job_id = \(looping)") == 3)
            #expect(
                try await client.scalar(
                    """
                    SELECT request->'tools' IS NULL FROM agentq.llm_calls WHERE job_id = \(looping) ORDER BY id DESC LIMIT 1
                    """))
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    /// Each SQL tool of a step runs under its own `timeout_ms`, whichever ran or failed before it
    /// (one statement sets the next tool's timeout).
    @Test func eachSQLToolOfAStepRunsUnderItsOwnTimeout() async throws {
        try await Self.withSetup("tools_timeouts") { client, url, _ in
            try await client.run(
                """
                INSERT INTO agentq.tools (name, description, parameters, kind, target, options)
                SELECT 'quick', 'Must answer at once', parameters, 'sql', 'public.place_order', '{"timeout_ms": 300}'
                  FROM agentq.tools WHERE name = 'place_order'
                """)
            let worker = try WorkerProcess(url: url)
            // quick (300 ms) times out; place_order (3 s) then sleeps 0.6 s and still succeeds.
            let first = try await Self.generate(
                client, #"a [mock tool=quick,place_order args='[{"item": "q1", "sleep": 1}, {"item": "p1", "sleep": 0.6}]']"#,
                tools: ["quick", "place_order"])
            // place_order succeeds first; quick still gets its own 300 ms, not place_order's 3 s.
            let second = try await Self.generate(
                client, #"b [mock tool=place_order,quick args='[{"item": "p2", "sleep": 0.6}, {"item": "q2", "sleep": 1}]']"#,
                tools: ["quick", "place_order"])
            for job in [first, second] { try await Self.waitFor(client, job, "succeeded") }
            #expect(try await client.scalar("SELECT string_agg(item, ',' ORDER BY item) FROM public.orders") == "p1,p2")
            let outcomes: String = try await client.scalar(
                """
                SELECT string_agg(tool_name || ':' || is_error || ':' || (result::text LIKE '%statement timeout%'), ' '
                                  ORDER BY job_id, tool_call_id)
                  FROM agentq.tool_calls WHERE job_id IN (\(first), \(second))
                """)
            #expect(outcomes == "quick:true:true place_order:false:false place_order:false:false quick:true:true")
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func httpToolsCallAllowedHostsOnly() async throws {
        try await Self.withSetup("tools_http") { client, url, mock in
            let base = "http://127.0.0.1:\(mock.port)/tools"
            try await client.run(
                """
                INSERT INTO agentq.tools (name, description, parameters, kind, target, options) VALUES
                  ('echo', 'Echoes', '{"type": "object"}', 'http', \(base + "/echo"), '{}'),
                  ('broken', 'Fails', '{"type": "object"}', 'http', \(base + "/status/503"), '{}'),
                  ('big', 'Too big', '{"type": "object"}', 'http', \(base + "/big"), '{"max_response_bytes": 1024}'),
                  ('elsewhere', 'Not allowed', '{"type": "object"}', 'http', \("http://localhost:\(mock.port)/tools/echo"), '{}'),
                  ('redirected', 'Redirects elsewhere', '{"type": "object"}', 'http', \(base + "/redirect"), '{}'),
                  ('slow', 'Answers too late', '{"type": "object"}', 'http', \(base + "/slow"), '{"timeout_ms": 300}')
                """)
            let worker = try WorkerProcess(url: url, environment: ["AGENTQ_HTTP_TOOL_HOSTS": "127.0.0.1:\(mock.port)"])
            let echo = try await Self.generate(client, #"e [mock tool=echo args='{"x": 1}']"#, tools: ["echo"])
            try await Self.waitFor(client, echo, "succeeded")
            let result: String = try await client.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(echo)")
            let value = try JSONValue.parse(result)
            #expect(value["echo"] == .object(["x": .number(1)]))
            #expect(value["idempotency_key"]?.stringValue == "agentq-\(echo)-call_mock_1_1")
            #expect(value["ctx"]?["job_id"] == .number(Double(echo)) && value["ctx"]?["tool_call_id"]?.stringValue == "call_mock_1_1")
            let before: Int = try await Self.toolRequests(mock)
            // A redirect is not followed (it could lead to a host not on the list): it is an error result.
            for (tool, expected) in [
                ("elsewhere", "is not on AGENTQ_HTTP_TOOL_HOSTS"), ("broken", "HTTP 503"), ("big", "over 1024 bytes"),
                ("redirected", "HTTP 307"), ("slow", "timed out after")
            ] {
                let job = try await Self.generate(client, "t [mock tool=\(tool)]", tools: [tool])
                try await Self.waitFor(client, job, "succeeded")
                let text: String = try await client.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(job)")
                #expect(text.contains(expected), "\(tool): \(text)")
                #expect(try await client.scalar("SELECT is_error FROM agentq.tool_calls WHERE job_id = \(job)"))
            }
            #expect(try await Self.toolRequests(mock) == before + 4, "the refused host got no request, not even through a redirect")
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    static func toolRequests(_ mock: MockLLMProcess) async throws -> Int {
        let text = try await httpGet("http://127.0.0.1:\(mock.port)/tools/calls")
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}
