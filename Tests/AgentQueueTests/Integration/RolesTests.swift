import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// The roles of sql/008_roles_grants.sql and row-level security: each role connects as a login role of its own, a
/// producer session names its user with `agentq.user_id`, and a real worker process runs as
/// `agentq_worker`.
@Suite struct RolesTests {
    // Seen twice in a loaded full run: the one-connection producer client stopped after an expected
    // error (the server waiting for its next query); the limit makes that a failure, not a hang.
    @Test(.timeLimit(.minutes(2)))
    func aProducerSeesAndChangesOnlyItsUsersRows() async throws {
        try await TestDatabase.with("rls_matrix") { owner, url in
            try await Self.loginRole("agentq_test_producer", in: "agentq_producer", owner)
            try await Self.loginRole("agentq_test_worker", in: "agentq_worker", owner)
            // Messages are embedded too (embed jobs enqueued by the producer's inserts, run by the worker).
            try await owner.run("UPDATE agentq.agents SET embedding_model = 'mock:embed-8' WHERE name = 'default'")
            let producer = Self.url(url, user: "agentq_test_producer")
            let (threadA, jobA): (UUID, Int64) = try await Self.session(producer, user: "A") { (a: PostgresClient) async throws in
                let thread: UUID = try await a.scalar("SELECT agentq.create_thread(title => 'A''s')")
                let job: Int64 = try await a.scalar("SELECT agentq.generate(\(thread), 'hello from A [mock words=6]')")
                #expect(
                    try await a.scalar("SELECT user_id FROM agentq.threads WHERE id = \(thread)") == "A",
                    "new threads default to the session's user")
                return (thread, job)
            }
            let (threadB, jobB): (UUID, Int64) = try await Self.session(producer, user: "B") { (b: PostgresClient) async throws in
                let job: Int64 = try await b.scalar("SELECT agentq.generate(null, 'hello from B [mock words=4]')")
                return (try await b.scalar("SELECT thread_id FROM agentq.jobs WHERE id = \(job)"), job)
            }
            #expect(try await owner.scalar("SELECT user_id FROM agentq.threads WHERE id = \(threadB)") == "B")

            // The worker, as its own role, serves both users.
            let worker = try WorkerProcess(url: Self.url(url, user: "agentq_test_worker"))
            try await eventually(timeout: .seconds(30), "both jobs succeeded") {
                try await owner.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded' AND kind = 'generate'") == 2
            }
            try await eventually(timeout: .seconds(30), "prompts and replies embedded") {
                try await owner.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE model = 'mock:embed-8'") == 4
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0, "\(worker.log)")
            #expect(!worker.log.contains("permission denied"), "\(worker.log)")

            try await owner.run(
                """
                INSERT INTO agentq.embeddings (message_id, model, dims, thread_id, user_id, embedding)
                SELECT id, 'test', 3, thread_id, user_id, '[1,2,3]' FROM agentq.messages WHERE thread_id = \(threadA)
                """)
            let streamsOfA: [UUID] = try await owner.rows("SELECT id FROM agentq.streams WHERE thread_id = \(threadA)", as: UUID.self)
            let ofA = Self.rowsOfA(thread: threadA, job: jobA, streams: streamsOfA)
            for (table, condition) in ofA {
                let rows: Int = try await owner.scalar(
                    PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM agentq.\(table) WHERE \(condition)"))
                #expect(rows > 0, "A has \(table) rows")
            }

            try await Self.session(producer, user: "B") { (b: PostgresClient) async throws in
                // Reads: none of A's rows, in any table, and all of B's.
                for (table, condition) in ofA {
                    let rows: Int = try await b.scalar(
                        PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM agentq.\(table) WHERE \(condition)"))
                    #expect(rows == 0, "B reads A's \(table)")
                }
                #expect(try await b.scalar("SELECT count(*)::int FROM agentq.messages") == 2)
                #expect(try await b.scalar("SELECT count(*)::int FROM agentq.stream_deltas") > 0)
                #expect(try await b.scalar("SELECT count(*)::int FROM agentq.usage WHERE kind = 'chat'") == 1)
                #expect(try await b.scalar("SELECT count(*)::int FROM agentq.embeddings WHERE model = 'mock:embed-8'") == 2)
                #expect(try await b.scalar("SELECT (agentq.job_result(\(jobB))->>'status')") == "succeeded")
                // A's thread and job look like ones that do not exist.
                await expectError(b, "SELECT agentq.generate(\(threadA), 'sneaky')", "P0002")
                await expectError(b, "SELECT agentq.save_message(\(threadA), 'user', 'sneaky')", "P0002")
                await expectError(b, "SELECT agentq.job_result(\(jobA))", "P0002")
                await expectError(b, "SELECT agentq.cancel(\(jobA))", "P0002")
                await expectError(b, "SELECT agentq.cancel_thread_jobs(\(threadA))", "P0002")
                await expectError(b, "SELECT agentq.delete_thread(\(threadA))", "P0002")
                await expectError(b, "SELECT agentq.update_thread(\(threadA), title => 'mine')", "P0002")
                #expect(try await b.scalar("SELECT count(*)::int FROM agentq.list_messages(\(threadA))") == 0)
                #expect(try await b.scalar("SELECT agentq.cancel_user_jobs('A')") == 0)
                // Direct writes: filtered away, or refused by the policy's check.
                #expect(
                    try await b.scalar(
                        "WITH d AS (DELETE FROM agentq.threads WHERE id = \(threadA) RETURNING 1) SELECT count(*)::int FROM d") == 0)
                #expect(
                    try await b.scalar(
                        "WITH u AS (UPDATE agentq.jobs SET priority = 9 WHERE id = \(jobA) RETURNING 1) SELECT count(*)::int FROM u") == 0)
                await expectError(b, "INSERT INTO agentq.threads (user_id) VALUES ('A')", "42501")
                await expectError(
                    b, "INSERT INTO agentq.jobs (kind, user_id, options) VALUES ('generate', 'A', '{\"prompt\": \"x\"}')", "42501")
                // Worker and admin functions, the dashboards and raw LLM calls are not the producer's.
                await expectError(b, "SELECT * FROM agentq.claim('me', array['default'], 10, '30 s')", "42501")
                await expectError(b, "SELECT agentq.purge(now())", "42501")
                await expectError(b, "SELECT count(*) FROM agentq.queue_stats", "42501")
                await expectError(b, "SELECT count(*) FROM agentq.llm_calls", "42501")
                await expectError(b, "UPDATE agentq.agents SET model = 'mock:x'", "42501")
            }
            // Without a user, a producer session sees only rows that have none.
            try await Self.session(producer, user: nil) { (anonymous: PostgresClient) async throws in
                #expect(try await anonymous.scalar("SELECT count(*)::int FROM agentq.threads") == 0)
                let job: Int64 = try await anonymous.scalar("SELECT agentq.generate(null, 'anonymous')")
                #expect(try await anonymous.scalar("SELECT count(*)::int FROM agentq.jobs WHERE id = \(job)") == 1)
            }
            // A still has everything of its own, untouched by B.
            try await Self.session(producer, user: "A") { (a: PostgresClient) async throws in
                #expect(try await a.scalar("SELECT title FROM agentq.threads WHERE id = \(threadA)") == "A's")
                #expect(try await a.scalar("SELECT count(*)::int FROM agentq.messages") == 2)
                #expect(try await a.scalar("SELECT count(*)::int FROM agentq.threads") == 1)
            }
        }
    }

    @Test func aReaderReadsTheDashboardsAndWritesNothing() async throws {
        try await TestDatabase.with("rls_reader") { owner, url in
            try await Self.loginRole("agentq_test_reader", in: "agentq_reader", owner)
            try await owner.run("SELECT agentq.generate(null, 'x')")
            try await Self.session(Self.url(url, user: "agentq_test_reader"), user: nil) { (reader: PostgresClient) async throws in
                for view in [
                    "queue_stats", "active_jobs", "failed_jobs", "workers", "usage_daily", "thread_activity",
                    "throughput_last_minute"
                ] {
                    _ = try await reader.scalar(PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM agentq.\(view)"), as: Int.self)
                }
                #expect(try await reader.scalar("SELECT jobs::int FROM agentq.queue_stats WHERE status = 'queued'") == 1)
                await expectError(reader, "SELECT count(*) FROM agentq.messages", "42501")
                await expectError(reader, "SELECT agentq.generate(null, 'x')", "42501")
                await expectError(reader, "INSERT INTO agentq.threads DEFAULT VALUES", "42501")
                await expectError(reader, "SELECT agentq.pause_queue('default')", "42501")
            }
            let status = try runAgentq(["status", "--database-url", Self.url(url, user: "agentq_test_reader").libpqURL])
            #expect(status.status == 0, "\(status.err)")
            #expect(status.out.contains("queued"))
        }
    }

    @Test func theWorkerRoleRunsMaintenanceButNotAdministration() async throws {
        try await TestDatabase.with("rls_worker") { owner, url in
            try await Self.loginRole("agentq_test_worker", in: "agentq_worker", owner)
            try await Self.session(Self.url(url, user: "agentq_test_worker"), user: nil) { (worker: PostgresClient) async throws in
                _ = try await worker.scalar("SELECT agentq.prune(100)::text", as: String.self)
                _ = try await worker.scalar("SELECT agentq.take_back_expired(100)", as: Int.self)
                await expectError(worker, "SELECT agentq.purge(now())", "42501")
                await expectError(worker, "SELECT agentq.pause_queue('default')", "42501")
                await expectError(worker, "UPDATE agentq.agents SET model = 'mock:x'", "42501")
                await expectError(worker, "DELETE FROM agentq.threads", "42501")
                // The producer API is not the worker's: it serves every user, so it acts for none.
                await expectError(worker, "SELECT agentq.generate(null, 'x')", "42501")
                await expectError(worker, "SELECT agentq.save_message(gen_random_uuid(), 'user', 'x')", "42501")
                await expectError(worker, "DELETE FROM agentq.streams", "42501")
                // Management of embeddings is the owner's.
                await expectError(worker, "SELECT agentq.reembed('mock:embed-8')", "42501")
            }
        }
    }

    /// No function of the schema is executable through PUBLIC (each role gets what it is granted),
    /// and the producer cannot reach the worker's, the tool steps' or embedding management.
    @Test func noFunctionIsPublicsAndTheProducersAreNarrow() async throws {
        try await TestDatabase.with("rls_functions") { owner, _ in
            let open = try await owner.rows(
                """
                SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'agentq' AND has_function_privilege('public', p.oid, 'execute') ORDER BY 1
                """, as: String.self)
            #expect(open.isEmpty, "executable by PUBLIC: \(open)")
            for function in [
                "agentq.begin_step(text,bigint,integer,jsonb)", "agentq.embed_inputs(bigint[])",
                "agentq.reembed(text,uuid,text)", "agentq.delete_embeddings(text,uuid,text)",
                "agentq.enqueue_embed_jobs(uuid[],text,integer,boolean)"
            ] {
                let allowed: Bool = try await owner.scalar(
                    "SELECT has_function_privilege('agentq_producer', \(function)::regprocedure, 'execute')")
                #expect(!allowed, "the producer may call \(function)")
            }
            let context: Bool = try await owner.scalar(
                "SELECT has_function_privilege('agentq_producer', 'agentq.context_messages(uuid,text,jsonb,vector)'::regprocedure, 'execute')"
            )
            #expect(context)
        }
    }

    /// Every table either has row-level security or holds no user's data (a new table must choose).
    @Test func everyTableHasADecision() async throws {
        try await TestDatabase.with("rls_tables") { owner, _ in
            let tables = try await owner.rows(
                """
                SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'agentq' AND c.relkind IN ('r', 'p') ORDER BY 1
                """, as: (String, Bool).self)
            let shared: Set = [
                "schema_migrations", "settings", "providers", "agents", "tools", "worker_registry",
                "installation", "queue_pauses"
            ]
            for (table, secured) in tables {
                #expect(secured != shared.contains(table), "\(table): row-level security \(secured ? "on" : "off")")
            }
        }
    }

    // MARK: - Helpers

    /// A login role that is a member of `group`, made once per server (roles are cluster-wide).
    static func loginRole(_ name: String, in group: String, _ owner: PostgresClient) async throws {
        try await owner.run(
            PostgresQuery(
                unsafeSQL: """
                    DO $$ BEGIN
                        CREATE ROLE \(name) LOGIN IN ROLE \(group);
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END $$
                    """))
    }

    static func url(_ url: DatabaseURL, user: String) -> DatabaseURL {
        var copy = url
        copy.username = user
        copy.password = nil
        return copy
    }

    /// Runs `body` on a one-connection client of that role whose session acts for `user`.
    static func session<T: Sendable>(
        _ url: DatabaseURL, user: String?,
        _ body: @Sendable @escaping (PostgresClient) async throws -> T
    ) async throws -> T {
        try await TestDatabase.withClient(url, maximumConnections: 1) { client in
            if let user { try await client.run("SELECT set_config('agentq.user_id', \(user), false)") }
            return try await body(client)
        }
    }

    /// User A's rows in each table with user data, by the ids of A's thread, job and streams (literal
    /// ids: a subquery would itself be filtered by the session's policies).
    static func rowsOfA(thread: UUID, job: Int64, streams: [UUID]) -> [(String, String)] {
        [
            ("threads", "id = '\(thread)'"), ("messages", "thread_id = '\(thread)'"), ("jobs", "id = \(job)"),
            ("streams", "thread_id = '\(thread)'"), ("usage", "job_id = \(job)"), ("embeddings", "thread_id = '\(thread)'"),
            ("stream_deltas", "stream_id IN (\(streams.map { "'\($0)'" }.joined(separator: ", ")))")
        ]
    }
}
