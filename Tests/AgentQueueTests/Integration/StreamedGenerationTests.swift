import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Streamed generation end to end: real `agentq worker` processes calling a real `agentq mock-llm`
/// over HTTP through the `openai` provider, on the real database.
@Suite struct StreamedGenerationTests {
    /// Listens to a thread, runs `start`, and returns the events until the job's end (or `until`).
    static func events(
        _ client: PostgresClient, thread: UUID, timeout: Duration = .seconds(60),
        until: @Sendable @escaping (ThreadEvent) -> Bool = { $0.isJobFinal },
        _ start: @Sendable @escaping () async throws -> Void
    ) async throws -> [ThreadEvent] {
        let channel: String = try await client.scalar("SELECT agentq.thread_channel(\(thread))")
        return try await client.withConnection { conn in
            return try await conn.listen(on: channel) { notes in
                // Registered once PostgresNIO listens: it treats a notification on a channel it is still
                // starting to listen on as a fatal error.
                _ = try await conn.query("SELECT agentq.listen(\(thread))", logger: TestDatabase.logger).collect()
                try await start()
                return try await withThrowingTaskGroup(of: [ThreadEvent]?.self) { group in
                    group.addTask {
                        var seen: [ThreadEvent] = []
                        for try await note in notes {
                            guard let e = ThreadEvent.parse(note.payload) else { continue }
                            seen.append(e)
                            if until(e) { break }
                        }
                        return seen
                    }
                    group.addTask {
                        try await Task.sleep(for: timeout); return nil
                    }
                    defer { group.cancelAll() }
                    guard let seen = try await group.next() ?? nil else { throw TestFailure("events: timed out") }
                    return seen
                }
            }
        }
    }

    @Test func deltasAreContiguousInOrderAndConcatenateToTheFinalText() async throws {
        try await TestDatabase.with("stream_deltas") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            let worker = try WorkerProcess(url: url)
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let seen = try await Self.events(client, thread: thread) {
                try await client.run("SELECT agentq.generate(\(thread), '[mock words=60 tps=30] tell me', 'remote')")
            }
            let types = seen.map(\.type)
            #expect(types.last == "job.succeeded")
            let deltas = seen.filter { $0.type == "stream.delta" }
            #expect(deltas.count >= 2, "a 2 s reply at a 100 ms throttle comes in several ticks: \(types)")
            #expect(deltas.map { $0.seq ?? -1 } == Array(0..<deltas.count), "listeners see every seq once, in order")
            let started = types.firstIndex(of: "stream.started")!, finished = types.firstIndex(of: "stream.finished")!
            #expect(started < types.firstIndex(of: "stream.delta")! && finished > types.lastIndex(of: "stream.delta")!)
            #expect(types.firstIndex(of: "message.updated")! < types.firstIndex(of: "job.succeeded")!)
            let streamed = deltas.map { $0.text ?? "" }.joined()
            let (text, status): (String, String) = try await client.rows(
                """
                SELECT text, status FROM agentq.messages WHERE thread_id = \(thread) AND role = 'assistant'
                """, as: (String, String).self
            ).first!
            #expect(status == "success")
            #expect(streamed == text)
            #expect(MockPlan.words(text) == 60)
            let stored: String = try await client.scalar(
                """
                SELECT string_agg(d.text, '' ORDER BY d.seq) FROM agentq.stream_deltas d
                  JOIN agentq.streams s ON s.id = d.stream_id WHERE s.thread_id = \(thread) AND s.status = 'finished'
                """)
            #expect(stored == text)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.usage WHERE thread_id = \(thread) AND provider = 'http'
                       AND completion_tokens = 60 AND raw IS NULL AND message_id IS NOT NULL
                    """) == 1)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit() == 0)
        }
    }

    @Test func theModelSeesTheThreadsTurnsAsContext() async throws {
        try await TestDatabase.with("stream_context") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client, agentOptions: #"{"log_raw": true}"#)
            let worker = try WorkerProcess(url: url)
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            for turn in 1...3 {
                let job: Int64 = try await client.scalar(
                    "SELECT agentq.generate(\(thread), \("[mock reply=\"answer \(turn)\"] question \(turn)"), 'remote')")
                try await eventually(timeout: .seconds(30), "turn \(turn)") {
                    try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded"
                }
            }
            let request: String = try await client.scalar(
                """
                SELECT request::text FROM agentq.llm_calls WHERE thread_id = \(thread) ORDER BY id DESC LIMIT 1
                """)
            let body = try JSONValue.parse(request)
            guard case .array(let messages)? = body["messages"] else { throw TestFailure("no messages in \(request)") }
            let roles = messages.compactMap { $0["role"]?.stringValue }
            let contents = messages.compactMap { $0["content"]?.stringValue }
            #expect(roles == ["system", "user", "assistant", "user", "assistant", "user"])
            #expect(contents[0] == "You are a test.")
            #expect(contents[2] == "answer 1" && contents[4] == "answer 2")
            #expect(contents[5].hasSuffix("question 3"))
            #expect(body["stream"] == .bool(true) && body["stream_options"]?["include_usage"] == .bool(true))
            #expect(!request.lowercased().contains("authorization"))
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.llm_calls WHERE http_status = 200") == 3)
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    @Test func objectModeValidatesAndRepairsOnce() async throws {
        try await TestDatabase.with("stream_object") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            let worker = try WorkerProcess(url: url)
            let schema =
                #"{"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"], "additionalProperties": false}"#
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let good: Int64 = try await client.scalar("SELECT agentq.generate_object(\(thread), 'plan a trip', \(schema)::jsonb, 'remote')")
            let repaired: Int64 = try await client.scalar(
                "SELECT agentq.generate_object(\(thread), '[mock bad_json=1] plan again', \(schema)::jsonb, 'remote')")
            let hopeless: Int64 = try await client.scalar(
                "SELECT agentq.generate_object(\(thread), '[mock bad_json=2] plan badly', \(schema)::jsonb, 'remote')")
            try await eventually(timeout: .seconds(30), "object jobs final") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE finished_at IS NOT NULL") == 3
            }
            for job in [good, repaired] {
                #expect(try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded")
                let object: String = try await client.scalar("SELECT (result->'object')::text FROM agentq.jobs WHERE id = \(job)")
                #expect(try JSONValue.parse(object) == JSONValue.parse(#"{"city": "sample", "days": 1}"#))
            }
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.usage WHERE job_id = \(repaired)") == 2)
            let (status, error): (String, String) = try await client.rows(
                "SELECT status, last_error FROM agentq.jobs WHERE id = \(hopeless)", as: (String, String).self
            ).first!
            #expect(status == "failed")
            #expect(error.contains("does not match the schema after one repair"))
            // The stream of an object holds exactly the saved JSON.
            #expect(
                try await client.scalar(
                    """
                    SELECT bool_and(m.text = (SELECT string_agg(d.text, '' ORDER BY d.seq) FROM agentq.stream_deltas d
                                                JOIN agentq.streams s ON s.id = d.stream_id WHERE s.message_id = m.id))
                      FROM agentq.messages m WHERE m.job_id IN (\(good), \(repaired)) AND m.status = 'success'
                    """) == true)
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    @Test func everyFaultModeEndsAsTheSpecSays() async throws {
        try await TestDatabase.with("stream_faults") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            let worker = try WorkerProcess(url: url, arguments: ["--retry-base-ms", "100"])
            let limited: Int64 = try await client.scalar(
                "SELECT agentq.generate(agentq.create_thread(), '[mock fail=1 fault=429 retry_after=1 reply=\"after the limit\"] a', 'remote')"
            )
            let broken: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(agentq.create_thread(), '[mock fail=99 fault=500] b', 'remote',
                                       options => '{"max_attempts": 2, "max_retries": 1}')
                """)
            let cut: Int64 = try await client.scalar(
                "SELECT agentq.generate(agentq.create_thread(), '[mock fail=1 fault=cut words=40 tps=200] c', 'remote')")
            let hung: Int64 = try await client.scalar(
                """
                SELECT agentq.generate(agentq.create_thread(), '[mock fail=9 fault=hang] d', 'remote',
                                       options => '{"max_attempts": 1, "timeout_ms": 1500}')
                """)
            try await eventually(timeout: .seconds(60), "fault jobs final") {
                try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE finished_at IS NOT NULL") == 4
            }
            func job(_ id: Int64) async throws -> (String, Int, String?) {
                try await client.rows(
                    "SELECT status, attempt, last_error FROM agentq.jobs WHERE id = \(id)",
                    as: (String, Int, String?).self
                ).first!
            }
            // 429 with Retry-After: the call is repeated within the attempt, then succeeds.
            let l = try await job(limited)
            #expect(l.0 == "succeeded" && l.1 == 1)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.usage WHERE job_id = \(limited)") == 2)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.usage WHERE job_id = \(limited) AND raw ? 'error'") == 1)
            // Repeated 500s: calls retried, then the job, then failed with the error recorded.
            let b = try await job(broken)
            #expect(b.0 == "failed" && b.1 == 2)
            #expect(b.2?.contains("HTTP 500") == true)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.usage WHERE job_id = \(broken)") == 4)
            // A cut stream: the attempt fails keeping its partial text; the retry succeeds.
            let c = try await job(cut)
            #expect(c.0 == "succeeded" && c.1 == 2)
            let replies = try await client.rows(
                """
                SELECT status, text FROM agentq.messages WHERE job_id = \(cut) AND role = 'assistant' ORDER BY created_at
                """, as: (String, String).self)
            #expect(replies.map(\.0) == ["failed", "success"], "\(replies)")
            let partial = replies.first?.1 ?? "", final = replies.last?.1 ?? ""
            #expect(!partial.isEmpty && final.hasPrefix(partial) && partial.count < final.count)
            #expect(try await client.scalar("SELECT count(*)::int FROM agentq.streams WHERE job_id = \(cut) AND status = 'aborted'") == 1)
            // A hang ends by the job's time budget.
            let h = try await job(hung)
            #expect(h.0 == "failed")
            #expect(h.2?.contains("timed out") == true)
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    @Test func cancelMidStreamStopsWithinASecondAndKeepsUsage() async throws {
        try await TestDatabase.with("stream_cancel") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            let worker = try WorkerProcess(url: url)
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let seen = try await Self.events(client, thread: thread, until: { $0.type == "stream.delta" }) {
                try await client.run("SELECT agentq.generate(\(thread), '[mock words=400 tps=20] talk', 'remote')")
            }
            let job: Int64 = try #require(seen.last?.jobID)
            #expect(try await client.scalar("SELECT agentq.cancel(\(job))") == false)
            try await eventually(timeout: .seconds(10), "cancelled") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "cancelled"
            }
            let (status, text): (String, String) = try await client.rows(
                "SELECT status, text FROM agentq.messages WHERE job_id = \(job) AND role = 'assistant'", as: (String, String).self
            ).first!
            #expect(status == "failed" && !text.isEmpty)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.usage WHERE job_id = \(job) AND completion_tokens > 0 AND raw->>'estimated' = 'true'
                    """) == 1)
            #expect(try await client.scalar("SELECT status FROM agentq.streams WHERE job_id = \(job)") == "aborted")
            worker.signal(SIGTERM)
            _ = await worker.waitForExit()
        }
    }

    @Test func aWorkerKilledMidStreamLeavesOneSuccessfulReply() async throws {
        try await TestDatabase.with("stream_kill9") { client, url in
            let mock = try await MockLLMProcess()
            try await mock.install(on: client)
            let doomed = try WorkerProcess(url: url, arguments: ["--lease", "2"])
            let thread: UUID = try await client.scalar("SELECT agentq.create_thread()")
            let seen = try await Self.events(client, thread: thread, until: { $0.type == "stream.delta" }) {
                try await client.run("SELECT agentq.generate(\(thread), '[mock words=60 tps=20] survive', 'remote')")
            }
            let job: Int64 = try #require(seen.last?.jobID)
            doomed.signal(SIGKILL)
            _ = await doomed.waitForExit()
            let rescuer = try WorkerProcess(url: url)
            try await eventually(timeout: .seconds(30), "rescued") {
                try await client.scalar("SELECT status FROM agentq.jobs WHERE id = \(job)") == "succeeded"
            }
            #expect(try await client.scalar("SELECT attempt FROM agentq.jobs WHERE id = \(job)") == 2)
            #expect(
                try await client.scalar(
                    """
                    SELECT count(*)::int FROM agentq.messages WHERE job_id = \(job) AND role = 'assistant' AND status = 'success'
                    """) == 1)
            let failed: String = try await client.scalar(
                """
                SELECT text FROM agentq.messages WHERE job_id = \(job) AND status = 'failed'
                """)
            #expect(!failed.isEmpty, "the killed attempt's message keeps what it streamed")
            rescuer.signal(SIGTERM)
            _ = await rescuer.waitForExit()
        }
    }
}
