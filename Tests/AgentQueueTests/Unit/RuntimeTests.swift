import Foundation
import Testing

@testable import AgentQueue

@Suite struct MockScriptTests {
    @Test func parsesDirectivesAndStripsThem() throws {
        let s = try MockScript(parsing: "Hi [mock reply=\"a ] b\" delay_ms=5 fail=2] there")
        #expect(s.reply == "a ] b")
        #expect(s.delayMilliseconds == 5)
        #expect(s.failAttempts == 2)
        #expect(s.prompt == "Hi  there")
    }

    @Test func badDirectivesAreNamed() {
        #expect(throws: GenerationError.self) { try MockScript(parsing: "[mock colour=red]") }
        #expect(throws: GenerationError.self) { try MockScript(parsing: "[mock words=many]") }
        #expect(throws: GenerationError.self) { try MockScript(parsing: "[mock words=3") }
    }

    @Test func mockModelFailsForTheChosenAttemptsThenAnswers() async throws {
        let model = MockModel()
        let messages = [ChatMessage(role: .user, text: "[mock fail=2 words=3] go")]
        for attempt in 1...2 {
            await #expect(throws: GenerationError.self) {
                try await model.complete(ChatRequest(model: "scripted", instructions: nil, messages: messages, attempt: attempt))
            }
        }
        let reply = try await model.complete(ChatRequest(model: "scripted", instructions: "be brief", messages: messages, attempt: 3))
        #expect(reply.text == "alpha bravo charlie")
        #expect(reply.usage == TokenUsage(promptTokens: 6, completionTokens: 3))
    }
}

@Suite struct ContextAssemblerTests {
    func message(_ ord: Int, _ step: Int, _ role: MessageRole, _ text: String) -> ContextMessage {
        ContextMessage(id: UUID(), role: role, contentJSON: "[]", text: text, ord: ord, step: step, tool: false)
    }

    @Test func recentThenPromptThenExistingReplies() {
        let msgs = [
            message(0, 0, .user, "q0"), message(0, 1, .assistant, "a0"),
            message(1, 0, .user, "q1"), message(1, 1, .assistant, "partial")
        ]
        let out = ContextAssembler(limit: 100).assemble(messages: msgs, promptOrd: 1, promptStep: 0, promptText: nil)
        #expect(out.map(\.text) == ["q0", "a0", "q1", "partial"])
    }

    @Test func aFullWindowStartsAtAWholeTurn() {
        let msgs = [
            message(0, 1, .assistant, "a0-tail"), message(1, 0, .user, "q1"), message(1, 1, .assistant, "a1"),
            message(2, 0, .user, "q2")
        ]
        let out = ContextAssembler(limit: 4).assemble(messages: msgs, promptOrd: 2, promptStep: 0, promptText: nil)
        #expect(out.map(\.text) == ["q1", "a1", "q2"])
    }

    @Test func unsavedPromptIsAppended() {
        let out = ContextAssembler(limit: 10).assemble(
            messages: [message(0, 0, .user, "old")], promptOrd: nil,
            promptStep: nil, promptText: "new")
        #expect(out.map(\.text) == ["old", "new"])
    }
}

@Suite struct DatabaseURLTests {
    @Test func parsesLibpqURLs() throws {
        let u = try DatabaseURL("postgresql://bob:s%40cret@db.example:6543/app?sslmode=require")
        #expect(u.host == "db.example" && u.port == 6543 && u.username == "bob" && u.password == "s@cret")
        #expect(u.database == "app" && u.sslMode == "require")
        #expect(!u.description.contains("s@cret"))
        let local = try DatabaseURL("postgres://postgres@127.0.0.1:54329/agentq")
        #expect(local.sslMode == "disable")
    }

    @Test func refusesOtherSchemes() {
        #expect(throws: AgentQueueError.self) { try DatabaseURL("mysql://x@y/z") }
        #expect(throws: AgentQueueError.self) { try DatabaseURL("postgres://x@y/z?sslmode=sometimes") }
    }

    /// A URL that does not parse is named in the error without its password (in the userinfo or
    /// the query), whatever else is wrong with it.
    @Test func aMalformedURLsErrorHidesItsPassword() {
        for bad in [
            "mysql://bob:hunter2@db/app", "postgresql//bob:hunter2@db/app", "bob:hunter2@db:5432/app",
            "postgres://bob:hunter2@db:port/app", "mysql://db/app?user=bob&password=hunter2",
            "host=db user=bob password=hunter2 dbname=app", "postgres://bob:hunter2@db/app?sslmode=never"
        ] {
            do {
                _ = try DatabaseURL(bad)
                Issue.record("\(bad) parsed")
            } catch {
                #expect(!"\(error)".contains("hunter2"), "\(error)")
            }
        }
    }
}

@Suite struct JSONValueTests {
    @Test func parsesEveryKind() throws {
        let v = try JSONValue.parse(#"{"a": [1, 2.5, true, false, null, "x"], "b": {"c": "d"}}"#)
        #expect(v["a"] == .array([.number(1), .number(2.5), .bool(true), .bool(false), .null, .string("x")]))
        #expect(v["b"]?["c"]?.stringValue == "d")
        #expect(v.merging(.object(["b": .number(1)]))["b"] == .number(1))
    }
}

@Suite struct FinishItemJSONTests {
    @Test func writesTheShapeFinishJobsReads() throws {
        let message = NewMessage(
            text: "line \"one\"\n\ttwo \u{1}", model: "m", provider: "mock",
            usage: TokenUsage(promptTokens: 3, completionTokens: 2), finishReason: "stop", agentName: "default")
        let item = FinishItem(
            jobID: 42, attempt: 2, outcome: .succeeded,
            result: JobResultPayload(text: "é ✓", messageIDs: [message.id], usage: message.usage),
            messages: [message],
            usage: [UsageRecord(provider: "mock", model: "m", usage: message.usage!, messageID: message.id)])
        let parsed = try JSONValue.parse(FinishItem.json([item, FinishItem(jobID: 7, attempt: 1, outcome: .retry, error: "x")]))
        guard case .array(let items) = parsed else { Issue.record("not an array"); return }
        #expect(items.count == 2)
        #expect(items[0]["job_id"] == .number(42))
        #expect(items[0]["result"]?["text"]?.stringValue == "é ✓")
        #expect(items[0]["messages"]?.arrayFirst?["text"]?.stringValue == "line \"one\"\n\ttwo \u{1}")
        #expect(items[0]["messages"]?.arrayFirst?["content"]?.arrayFirst?["type"]?.stringValue == "text")
        #expect(items[0]["usage"]?.arrayFirst?["total_tokens"] == .number(5))
        #expect(items[1]["outcome"]?.stringValue == "retry" && items[1]["messages"] == nil)
    }
}

@Suite struct JSONWriterTests {
    @Test func dropsNULWhichJsonbCannotHold() throws {
        var w = JSONWriter()
        w.string("a\u{0}b")
        #expect(w.text == "\"ab\"")
    }
}

extension JSONValue {
    var arrayFirst: JSONValue? { if case .array(let a) = self { return a.first }; return nil }
}
