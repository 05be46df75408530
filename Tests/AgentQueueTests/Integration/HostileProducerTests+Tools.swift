import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Tool calls against a hostile producer: a call is the worker's record (job, thread, user, tool,
/// arguments); the producer only answers it, and the worker re-checks what it resumes.
extension HostileProducerTests {
    /// An `orders` table that records who ordered what, its SQL tool behind an approval, and one
    /// without (which no job below offers).
    static func installOrders(_ owner: PostgresClient) async throws {
        try await owner.run("CREATE TABLE public.orders (id serial PRIMARY KEY, item text, user_id text)")
        try await owner.run(
            """
            CREATE FUNCTION public.place_order(args jsonb, ctx jsonb) RETURNS jsonb LANGUAGE sql AS $$
              INSERT INTO public.orders (item, user_id) VALUES (args->>'item', ctx->>'user_id')
              RETURNING jsonb_build_object('order', id) $$
            """)
        let order = #"{"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]}"#
        try await owner.run(
            """
            INSERT INTO agentq.tools (name, description, parameters, kind, target, options) VALUES
              ('approve_order', 'Orders once approved', \(order)::jsonb, 'sql', 'public.place_order', '{"needs_approval": true}'),
              ('place_order', 'Orders at once', \(order)::jsonb, 'sql', 'public.place_order', '{}')
            """)
    }

    /// A job of `user` parked on an approval of `approve_order` with `{"item": item}`.
    static func parkedOrder(_ s: Scene, user: String, item: String) async throws -> Int64 {
        let job: Int64 = try await RolesTests.session(s.producer, user: user) { p in
            try await p.scalar(
                """
                SELECT agentq.generate(null, \("buy [mock tool=approve_order args='{\"item\": \"\(item)\"}']"),
                                       options => '{"tools": ["approve_order"]}')
                """)
        }
        try await eventually(timeout: .seconds(30), "job \(job) waits for the approval") {
            try await s.owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "requires_action"
        }
        return job
    }

    /// Alice rewrites her pending call (arguments, user, tool, job) before approving it: refused;
    /// approved as it is, it runs as hers.
    @Test(.timeLimit(.minutes(2)))
    func aProducerCannotRewriteAToolCallBeforeApprovingIt() async throws {
        try await Self.scene("hostile_calls") { s in
            try await Self.installOrders(s.owner)
            let worker = try WorkerProcess(url: s.url)
            defer { worker.signal(SIGKILL) }
            let bobJob = try await Self.parkedOrder(s, user: "bob", item: "bread")
            let job = try await Self.parkedOrder(s, user: "alice", item: "tea")
            try await RolesTests.session(s.producer, user: "alice") { alice in
                let call = "job_id = \(job) AND tool_call_id = 'call_mock_1_1'"
                for change in [
                    "args = '{\"item\": \"caviar\"}'", "user_id = 'bob'", "job_id = \(bobJob)", "tool_name = 'place_order'",
                    "kind = 'client'", "status = 'approved', args = '{\"item\": \"caviar\"}'",
                    "thread_id = thread_id, call_message_id = NULL"
                ] {
                    await expectError(alice, PostgresQuery(unsafeSQL: "UPDATE agentq.tool_calls SET \(change) WHERE \(call)"), "42501")
                }
                await expectError(
                    alice,
                    """
                    INSERT INTO agentq.tool_calls (job_id, tool_call_id, thread_id, tool_name, kind, status)
                    SELECT \(bobJob), 'x', thread_id, 'place_order', 'sql', 'approved' FROM agentq.jobs WHERE id = \(job)
                    """, "42501")
                await expectError(alice, "SELECT agentq.approve_tool_call(\(bobJob), 'call_mock_1_1', true)", "P0002")
                try await alice.run("SELECT agentq.approve_tool_call(\(job), 'call_mock_1_1', true)")
            }
            try await eventually(timeout: .seconds(30), "alice's job succeeded") {
                try await s.owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded"
            }
            let orders = try await s.owner.rows("SELECT item, user_id FROM public.orders ORDER BY id", as: (String, String).self)
            #expect(orders.map { "\($0.0) for \($0.1)" } == ["tea for alice"])
            #expect(try await s.owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(bobJob)") == "requires_action")
        }
    }

    /// The worker re-checks a resumed call as it checks a new one (here the row is changed by the
    /// owner, who bypasses every guard of the database): arguments that no longer match the tool's
    /// schema, or a tool outside the job's own tool set, give an error result and run nothing.
    @Test(.timeLimit(.minutes(2)))
    func theWorkerRechecksTheCallsItResumes() async throws {
        try await Self.scene("hostile_resume") { s in
            try await Self.installOrders(s.owner)
            let worker = try WorkerProcess(url: s.url)
            defer { worker.signal(SIGKILL) }
            let invalid = try await Self.parkedOrder(s, user: "alice", item: "tea")
            let other = try await Self.parkedOrder(s, user: "carol", item: "jam")
            try await s.owner.run("UPDATE agentq.tool_calls SET args = '{\"item\": 5}' WHERE job_id = \(invalid)")
            try await s.owner.run("UPDATE agentq.tool_calls SET tool_name = 'place_order' WHERE job_id = \(other)")
            for (job, user) in [(invalid, "alice"), (other, "carol")] {
                try await RolesTests.session(s.producer, user: user) { p in
                    try await p.run("SELECT agentq.approve_tool_call(\(job), 'call_mock_1_1', true)")
                }
                try await eventually(timeout: .seconds(30), "job \(job) succeeded") {
                    try await s.owner.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded"
                }
            }
            #expect(try await s.owner.scalar("SELECT count(*)::int FROM public.orders") == 0, "nothing ran")
            let invalidResult: String = try await s.owner.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(invalid)")
            #expect(invalidResult.contains("invalid arguments"), "\(invalidResult)")
            let otherResult: String = try await s.owner.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(other)")
            #expect(otherResult.contains("not one of this job's tools"), "\(otherResult)")
        }
    }
}
