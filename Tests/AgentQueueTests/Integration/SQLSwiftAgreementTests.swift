import Foundation
import PostgresNIO
import Testing

@testable import AgentQueue

/// Rules that exist twice, once in Swift and once in SQL, checked against each other on a real
/// database:
/// - the options merge (the job's options over the thread's `agent_options` over the agent's, one
///   level deep): GenerationSettings, `agentq.job_contexts` (each job's `context.recent_messages`)
///   and `agentq.context_messages` (`recent_messages`, `exclude_tool_messages`, `search`);
/// - the default window size: WorkerConfiguration.recentMessages and context_messages' default;
/// - the recent window cut at a whole turn: ContextAssembler.window and context_messages;
/// - `exclude_tool_messages`: ContextAssembler's pairing and context_messages' filter.
@Suite struct SQLSwiftAgreementTests {
    /// One history, a thread's turns 0..<8: a question and an answer each; turns 1, 4 and 7 call a
    /// tool (an assistant message with the call, the tool's result, then the answer). Turn 0 is about
    /// zebras, so a prompt about zebras finds it with a text search.
    static let turns = 8

    static func historyValues(thread: UUID) -> String {
        var rows: [String] = []
        func row(_ ord: Int, _ step: Int, _ role: String, _ content: String, _ text: String, _ tool: Bool) {
            rows.append("('\(thread)', 'u1', \(ord), \(step), '\(role)', '\(content)', '\(text)', \(tool))")
        }
        for ord in 0..<turns {
            row(ord, 0, "user", "[]", ord == 0 ? "zebra facts please" : "question \(ord)", false)
            if ord % 3 == 1 {
                let call = #"[{"type": "tool-call", "tool_call_id": "c\#(ord)", "tool_name": "lookup", "args": {"n": \#(ord)}}]"#
                let result =
                    #"[{"type": "tool-result", "tool_call_id": "c\#(ord)", "tool_name": "lookup", "result": {"ok": true}, "is_error": false}]"#
                // An assistant tool-call message with text stays when tool messages are excluded; one without does not.
                row(ord, 1, "assistant", call, ord == 4 ? "checking" : "", true)
                row(ord, 2, "tool", result, #"{"ok": true}"#, true)
                row(ord, 3, "assistant", "[]", "answer \(ord)", false)
            } else {
                row(ord, 1, "assistant", "[]", "answer \(ord)", false)
            }
        }
        return rows.joined(separator: ",\n")
    }

    /// A thread holding the history, with `agent_options` in its metadata when given.
    static func thread(_ client: PostgresClient, agentOptions: String?) async throws -> UUID {
        let metadata = agentOptions.map { #"{"agent_options": \#($0)}"# } ?? "{}"
        let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u1', NULL, NULL, \(metadata)::jsonb)")
        try await client.run(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO agentq.messages (thread_id, user_id, ord, step, role, content, text, tool)
                    VALUES \(historyValues(thread: thread))
                    """))
        try await client.run("UPDATE agentq.threads SET last_ord = \(turns - 1) WHERE id = \(thread)")
        return thread
    }

    /// What the worker does for a claimed job: its context from `agentq.job_contexts`, its agent, its
    /// merged settings and the assembler they configure.
    struct SwiftSide {
        var record: JobContextRecord
        var settings: GenerationSettings
        var assembler: ContextAssembler
        var window: [ContextMessage]
    }

    static func swiftSide(_ client: PostgresClient, job: Int64, agent name: String, defaultRecent: Int) async throws -> SwiftSide {
        let store = JobStore(client: client, workerID: "agreement")
        let contexts = try await store.contexts(jobIDs: [job], recentMessages: defaultRecent, logger: TestDatabase.logger)
        let record = try #require(contexts[job])
        let agents = try await store.agents(named: [name], logger: TestDatabase.logger)
        let agent = try #require(agents[name])
        let options: String = try await client.scalar("SELECT options::text FROM agentq.jobs WHERE id = \(job)")
        let settings = try GenerationSettings(
            agent: agent, threadOptions: record.threadAgentOptions,
            jobOptions: try JSONValue.parse(options), defaultRecent: defaultRecent)
        let assembler = ContextAssembler(limit: settings.recentMessages, excludeTools: settings.excludeToolMessages)
        return SwiftSide(
            record: record, settings: settings, assembler: assembler,
            window: assembler.window(record.messages, promptOrd: record.promptOrd))
    }

    /// `agentq.context_messages` for the thread's newest message as the prompt (or `query`), with the
    /// job's options and agent: (section, message id, text) in order.
    static func sqlSide(
        _ client: PostgresClient, thread: UUID, agent: String, jobOptions: String,
        query: String? = nil
    ) async throws -> [(String, UUID?, String?)] {
        var options = try JSONValue.parse(jobOptions).objectValue ?? [:]
        options["agent"] = .string(agent)
        let text = JSONValue.object(options).jsonString
        if let query {
            return try await client.rows(
                """
                SELECT section, message_id, text FROM agentq.context_messages(\(thread), query => \(query), options => \(text)::jsonb)
                """, as: (String, UUID?, String?).self)
        }
        return try await client.rows(
            """
            SELECT section, message_id, text FROM agentq.context_messages(\(thread), options => \(text)::jsonb)
            """, as: (String, UUID?, String?).self)
    }

    struct Case: Sendable {
        var name: String
        var agentOptions = "{}"
        var threadOptions: String? = nil
        var jobOptions = "{}"
        var recent: Int
        var excludeTools = false
        var searches = false
    }

    static let agentContext = #"{"context": {"recent_messages": 3, "exclude_tool_messages": true}}"#
    static let agentSearch = #"{"context": {"recent_messages": 4, "search": {"text": true, "limit": 3}}}"#

    /// `recent` 100 is the worker's default (WorkerConfiguration.recentMessages), which
    /// context_messages assumes too.
    static let cases: [Case] = [
        Case(name: "nothing set: the worker's default", recent: 100),
        Case(name: "the agent's context", agentOptions: agentContext, recent: 3, excludeTools: true),
        Case(
            name: "the thread's context replaces the agent's whole (its exclude_tool_messages is not inherited)",
            agentOptions: agentContext, threadOptions: #"{"context": {"recent_messages": 9}}"#, recent: 9),
        Case(
            name: "the job's context over the thread's over the agent's", agentOptions: agentContext,
            threadOptions: #"{"context": {"recent_messages": 5}}"#,
            jobOptions: #"{"context": {"recent_messages": 6, "exclude_tool_messages": true}}"#, recent: 6, excludeTools: true),
        Case(
            name: "a job context without recent_messages falls back to the default", agentOptions: agentContext,
            jobOptions: #"{"context": {"exclude_tool_messages": false}}"#, recent: 100),
        Case(
            name: "thread options without a context leave the agent's", agentOptions: agentContext,
            threadOptions: #"{"model": "mock:other", "max_steps": 2}"#, recent: 3, excludeTools: true),
        Case(name: "one message: the prompt's turn is never cut", jobOptions: #"{"context": {"recent_messages": 1}}"#, recent: 1),
        Case(
            name: "a full window that starts with a whole tool turn still loses it",
            jobOptions: #"{"context": {"recent_messages": 5}}"#, recent: 5),
        Case(
            name: "a window holding a whole tool turn after the cut",
            jobOptions: #"{"context": {"recent_messages": 7}}"#, recent: 7),
        Case(
            name: "the same window without tool messages",
            jobOptions: #"{"context": {"recent_messages": 7, "exclude_tool_messages": true}}"#, recent: 7, excludeTools: true),
        Case(name: "zero messages", jobOptions: #"{"context": {"recent_messages": 0}}"#, recent: 0),
        Case(name: "a fractional size is ignored", jobOptions: #"{"context": {"recent_messages": 2.5}}"#, recent: 100),
        Case(name: "the agent's search", agentOptions: agentSearch, recent: 4, searches: true),
        Case(
            name: "a job's context turns the agent's search off", agentOptions: agentSearch,
            jobOptions: #"{"context": {"recent_messages": 4}}"#, recent: 4),
        Case(
            name: "a search of limit 0 does not search", agentOptions: agentSearch,
            threadOptions: #"{"context": {"recent_messages": 4, "search": {"text": true, "limit": 0}}}"#, recent: 4),
        Case(
            name: "the job's context replaces the thread's search with its own", threadOptions: #"{"context": {"search": {"text": true}}}"#,
            jobOptions: #"{"context": {"recent_messages": 2, "search": {"text": true, "limit": 2}}}"#, recent: 2, searches: true)
    ]

    @Test func theOptionsMergeAndTheRecentWindowAgree() async throws {
        try await TestDatabase.with("agree_window") { client, _ in
            let defaultRecent = WorkerConfiguration().recentMessages
            for (index, c) in Self.cases.enumerated() {
                let agent = "agree_\(index)"
                try await client.run(
                    """
                    INSERT INTO agentq.agents (name, model, options) VALUES (\(agent), 'mock:scripted', \(c.agentOptions)::jsonb)
                    """)
                let thread = try await Self.thread(client, agentOptions: c.threadOptions)
                let job: Int64 = try await client.scalar(
                    """
                    SELECT agentq.generate(\(thread), 'tell me about the zebra', \(agent), NULL, \(c.jobOptions)::jsonb)
                    """)
                let swift = try await Self.swiftSide(client, job: job, agent: agent, defaultRecent: defaultRecent)
                let sql = try await Self.sqlSide(client, thread: thread, agent: agent, jobOptions: c.jobOptions)

                // The merge, as Swift reads it (the expected values document the precedence).
                #expect(swift.settings.recentMessages == c.recent, "\(c.name): recent_messages")
                #expect(swift.settings.excludeToolMessages == c.excludeTools, "\(c.name): exclude_tool_messages")
                #expect((swift.settings.search != nil) == c.searches, "\(c.name): search")

                // job_contexts read the same recent_messages: it returned that many messages (all, when fewer).
                let saved: Int = try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.messages WHERE thread_id = \(thread) AND status = 'success'
                    """)
                #expect(
                    swift.record.messages.count == min(max(swift.settings.recentMessages, 0), saved),
                    "\(c.name): job_contexts returned \(swift.record.messages.count) messages")

                // context_messages cut the same window, and left out the same tool messages.
                let sqlWindow = sql.filter { $0.0 != "search" }
                let prompt = sqlWindow.filter { $0.0 == "prompt" }.map { $0.1 }
                let promptID = swift.record.messages.first(where: { $0.ord == swift.record.promptOrd && $0.step == swift.record.promptStep }
                )?.id
                if swift.window.contains(where: { $0.id == promptID }) {
                    #expect(prompt == [promptID], "\(c.name): the prompt")
                }
                if swift.settings.excludeToolMessages {
                    let assembled = swift.assembler.assemble(
                        messages: swift.record.messages, promptOrd: swift.record.promptOrd,
                        promptStep: swift.record.promptStep, promptText: nil)
                    #expect(sqlWindow.map { $0.2 ?? "" } == assembled.map(\.text), "\(c.name): the window without tool messages")
                    #expect(sqlWindow.allSatisfy { row in swift.window.contains { $0.id == row.1 } }, "\(c.name): rows outside the window")
                } else {
                    #expect(
                        sqlWindow.map { $0.1 } == swift.window.map { Optional($0.id) },
                        "\(c.name): window \(sqlWindow.map { $0.2 ?? "" }) in SQL, \(swift.window.map { $0.text ?? "" }) in Swift")
                }

                // context_messages searched exactly when Swift would (turn 0 matches and is outside the window).
                let searched = sql.contains { $0.0 == "search" }
                #expect(searched == c.searches, "\(c.name): search rows in SQL")
            }
        }
    }

    /// context_messages with a new `query` shows the window a generation of that prompt reads once it
    /// is saved: the query takes one place in the window, as the saved prompt does.
    @Test func aNewQueryTakesThePlaceOfTheSavedPrompt() async throws {
        try await TestDatabase.with("agree_query") { client, _ in
            let defaultRecent = WorkerConfiguration().recentMessages
            for (index, recent) in [1, 2, 3, 5, 7, 9, 100].enumerated() {
                let agent = "agree_query_\(index)"
                try await client.run(
                    """
                    INSERT INTO agentq.agents (name, model, options)
                    VALUES (\(agent), 'mock:scripted', jsonb_build_object('context', jsonb_build_object('recent_messages', \(recent)::int)))
                    """)
                let thread = try await Self.thread(client, agentOptions: nil)
                let prompt = "what about question \(index)?"
                let sql = try await Self.sqlSide(client, thread: thread, agent: agent, jobOptions: "{}", query: prompt)
                let job: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), \(prompt), \(agent))")
                let swift = try await Self.swiftSide(client, job: job, agent: agent, defaultRecent: defaultRecent)

                #expect(sql.last?.0 == "prompt" && sql.last?.1 == nil && sql.last?.2 == prompt, "recent \(recent): the query comes last")
                let promptID = swift.record.messages.last?.id
                #expect(
                    sql.filter { $0.0 == "recent" }.map { $0.1 } == swift.window.filter { $0.id != promptID }.map { Optional($0.id) },
                    "recent \(recent): the window before the prompt")
            }
        }
    }

    /// The dashboard's `active_jobs.model` is the model the generation calls: the job's, else the
    /// thread's `agent_options.model`, else the agent's options, else the agent's model.
    @Test func theActiveJobsModelIsTheGenerationsModel() async throws {
        try await TestDatabase.with("agree_model") { client, _ in
            try await client.run("INSERT INTO agentq.agents (name, model) VALUES ('agree_model', 'mock:agent-model')")
            let thread = try await Self.thread(client, agentOptions: #"{"model": "mock:thread-model"}"#)
            let job: Int64 = try await client.scalar("SELECT agentq.generate(\(thread), 'hi', 'agree_model')")
            try await client.run("SELECT count(*) FROM agentq.claim('agreement', '{default}', 10, '1 minute')")
            let swift = try await Self.swiftSide(client, job: job, agent: "agree_model", defaultRecent: 100)
            let shown: String = try await client.scalar("SELECT model FROM agentq.active_jobs WHERE id = \(job)")
            #expect(shown == "\(swift.settings.provider):\(swift.settings.model)" && shown == "mock:thread-model")
        }
    }
}
