import Foundation
import Testing

@testable import AgentQueue

@Suite struct OpenAIWireTests {
    @Test func requestCarriesContextSchemaToolsAndStreamUsage() throws {
        let request = ChatRequest(
            model: "gpt-x", instructions: "be brief",
            messages: [
                ChatMessage(role: .user, text: "hi"),
                ChatMessage(role: .assistant, text: "", toolCalls: [AssembledToolCall(id: "c1", name: "f", arguments: "{}")]),
                ChatMessage(role: .tool, text: "42", toolCallID: "c1")
            ],
            attempt: 1, temperature: 0.5, responseSchema: .object(["type": .string("object")]),
            tools: [ToolSpec(name: "f", description: "does f", parameters: .object([:]))])
        let body = try JSONValue.parse(OpenAIWire.requestBody(request, stream: true, includeUsage: true))
        #expect(body["model"] == .string("gpt-x"))
        #expect(body["stream_options"]?["include_usage"] == .bool(true))
        #expect(body["response_format"]?["json_schema"]?["schema"] == .object(["type": .string("object")]))
        #expect(body["tools"] != nil && body["temperature"] == .number(0.5))
        guard case .array(let messages)? = body["messages"] else { Issue.record("no messages"); return }
        #expect(messages.map { $0["role"]?.stringValue } == ["system", "user", "assistant", "tool"])
        #expect(messages[2]["content"] == .null && messages[2]["tool_calls"] != nil)
        #expect(messages[3]["tool_call_id"] == .string("c1"))
        // What the server side reads back is what was sent.
        let parsed = try OpenAIWire.parseRequest(OpenAIWire.requestBody(request, stream: false, includeUsage: false))
        #expect(parsed.chat.instructions == "be brief" && parsed.chat.messages == request.messages && !parsed.stream)
    }

    @Test func chunksRoundTripTextToolFragmentsFinishAndUsage() throws {
        let call = AssembledToolCall(id: "call_1", name: "lookup", arguments: #"{"q":"x"}"#)
        let text = try OpenAIWire.parseChunk(OpenAIWire.chunkJSON(id: "a", model: "m", created: 1, content: "Hel"))
        #expect(text.content == "Hel" && text.finishReason == nil)
        let first = try OpenAIWire.parseChunk(OpenAIWire.chunkJSON(id: "a", model: "m", created: 1, toolCall: (0, call, true, #"{"q""#)))
        let second = try OpenAIWire.parseChunk(OpenAIWire.chunkJSON(id: "a", model: "m", created: 1, toolCall: (0, call, false, #":"x"}"#)))
        var assembler = ToolCallAssembler()
        for f in first.toolCallFragments + second.toolCallFragments {
            assembler.add(index: f.index, id: f.id, name: f.name, argumentsFragment: f.arguments)
        }
        #expect(try assembler.calls() == [call])
        let usage = try OpenAIWire.parseChunk(
            OpenAIWire.chunkJSON(
                id: "a", model: "m", created: 1,
                usage: TokenUsage(promptTokens: 3, completionTokens: 4), noChoices: true))
        #expect(usage.usage == TokenUsage(promptTokens: 3, completionTokens: 4))
        #expect(try OpenAIWire.parseChunk(#"{"error": {"message": "overloaded"}}"#).error == "overloaded")
        #expect(throws: GenerationError.self) { try OpenAIWire.parseChunk("not json") }
    }

    @Test func wholeCompletionsEmbeddingsErrorsAndRetryAfter() throws {
        let reply = try OpenAIWire.parseCompletion(
            OpenAIWire.completionJSON(
                id: "x", model: "m", created: 1, text: "done", toolCalls: [], finishReason: "stop",
                usage: TokenUsage(promptTokens: 1, completionTokens: 1)))
        #expect(reply.text == "done" && reply.usage?.totalTokens == 2)
        let embedded = try OpenAIWire.parseEmbeddings(OpenAIWire.embeddingsJSON(model: "e", vectors: [[1, 0], [0, 1]], promptTokens: 2))
        #expect(embedded.vectors == [[1, 0], [0, 1]] && embedded.promptTokens == 2)
        #expect(OpenAIWire.errorMessage(body: OpenAIWire.errorJSON(message: "bad key", type: "auth")) == "bad key")
        #expect(OpenAIWire.retryAfter("2") == .seconds(2))
        #expect(OpenAIWire.retryAfter("0.5") == .milliseconds(500))
        let now = Date(timeIntervalSince1970: 1_000_000)
        let later = OpenAIWire.retryAfter("Mon, 12 Jan 1970 13:46:50 GMT", now: now)  // 10 s after `now`
        #expect(later == .seconds(10))
        #expect(OpenAIWire.retryAfter("soon") == nil)
    }
}

@Suite struct JSONSchemaValidatorTests {
    static let schema = try! JSONValue.parse(
        """
        {"type": "object", "required": ["name", "tags"], "additionalProperties": false,
         "properties": {"name": {"type": "string", "minLength": 2}, "age": {"type": "integer", "minimum": 0},
                        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
                        "kind": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
        """)

    @Test func acceptsAMatchingValue() throws {
        let ok = try JSONValue.parse(#"{"name": "Al", "age": 3, "tags": ["a"], "kind": null}"#)
        #expect(JSONSchemaValidator(schema: Self.schema).problems(in: ok).isEmpty)
    }

    @Test func namesEveryProblemWithItsPath() throws {
        let bad = try JSONValue.parse(#"{"name": "A", "age": 1.5, "tags": ["a", "c", "b"], "extra": 1, "kind": 3}"#)
        let problems = JSONSchemaValidator(schema: Self.schema).problems(in: bad)
        #expect(problems.contains("$.name must be at least 2 characters"))
        #expect(problems.contains("$.age must be integer, got number"))
        #expect(problems.contains("$.tags allows at most 2 items"))
        #expect(problems.contains { $0.hasPrefix("$.tags[1] must be one of") })
        #expect(problems.contains("$.extra is not allowed (additionalProperties is false)"))
        #expect(problems.contains("$.kind must match at least one of the anyOf schemas"))
        #expect(JSONSchemaValidator(schema: Self.schema).problems(in: .object([:])).contains("$.name is required"))
    }

    @Test func boundsAndPatternsAreChecked() throws {
        let schema = try JSONValue.parse(
            """
            {"type": "object", "properties": {
              "n": {"type": "number", "minimum": 1, "maximum": 10},
              "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
              "q": {"type": "integer", "multipleOf": 5},
              "code": {"type": "string", "pattern": "^[A-Z]{3}$"}}}
            """)
        let validator = JSONSchemaValidator(schema: schema)
        #expect(validator.problems(in: try JSONValue.parse(#"{"n": 1, "x": 0.5, "q": 15, "code": "ABC"}"#)).isEmpty)
        #expect(validator.problems(in: try JSONValue.parse(#"{"n": 10, "x": 0.999}"#)).isEmpty)
        let problems = validator.problems(in: try JSONValue.parse(#"{"n": 11, "x": 0, "q": 7, "code": "abcd"}"#))
        #expect(problems.contains("$.n must be <= 10"))
        #expect(problems.contains("$.x must be > 0"))
        #expect(problems.contains("$.q must be a multiple of 5"))
        #expect(problems.contains("$.code must match the pattern ^[A-Z]{3}$"))
        #expect(Set(validator.problems(in: try JSONValue.parse(#"{"n": 0, "x": 1}"#))) == ["$.n must be >= 1", "$.x must be < 1"])
    }

    @Test func theMocksSampleMatchesItsSchema() {
        #expect(JSONSchemaValidator(schema: Self.schema).problems(in: JSONSampler.sample(Self.schema)).isEmpty)
    }
}

@Suite struct MockPlanTests {
    func request(_ prompt: String, schema: JSONValue? = nil, extra: [ChatMessage] = []) -> ChatRequest {
        ChatRequest(
            model: "m", instructions: "sys", messages: [ChatMessage(role: .user, text: prompt)] + extra, attempt: 1,
            responseSchema: schema)
    }

    @Test func faultsCountCallsThenAnswer() throws {
        let r = request("[mock fail=2 fault=429 retry_after=3 words=4 tps=10] go")
        #expect(try MockPlan(for: r, callNumber: 1).action == .fail(.rateLimited, retryAfterSeconds: 3))
        let ok = try MockPlan(for: r, callNumber: 3)
        #expect(ok.action == .answer && ok.chunks == ["alpha ", "bravo ", "charlie ", "delta"] && ok.chunkInterval == .milliseconds(100))
        #expect(ok.usage == TokenUsage(promptTokens: 8, completionTokens: 4))  // the words sent, directives included
        #expect(try MockPlan(for: request("[mock fail=1 fault=cut] x"), callNumber: 1).action == .fail(.cut, retryAfterSeconds: 0))
    }

    @Test func toolCallThenAnswerWithItsResult() throws {
        let tools = [ToolSpec(name: "lookup", description: nil, parameters: .object([:]))]
        var r = request(#"[mock tool=lookup args='{"q": 1}'] find"#)
        #expect(try MockPlan(for: r, callNumber: 1).action == .answer, "no tool offered: no call")
        r.tools = tools
        guard case .toolCalls(let calls) = try MockPlan(for: r, callNumber: 1).action, let call = calls.first else {
            Issue.record("no tool call"); return
        }
        #expect(calls.count == 1 && call.name == "lookup" && call.arguments == #"{"q": 1}"# && call.id == "call_mock_1_1")
        var after = request(
            #"[mock tool=lookup args='{"q": 1}'] find"#,
            extra: [
                ChatMessage(role: .assistant, text: "", toolCalls: [call]),
                ChatMessage(role: .tool, text: "found it", toolCallID: call.id)
            ])
        after.tools = tools
        let plan = try MockPlan(for: after, callNumber: 2)
        #expect(plan.action == .answer && plan.text == "lookup returned: found it")
    }

    @Test func toolCallThenScriptedWordsOnceTheResultIsIn() throws {
        let prompt = #"[mock tool=lookup args='{"sku": "sku-0042"}' words=20] what does sku-0042 cost?"#
        var r = request(prompt)
        r.tools = [ToolSpec(name: "lookup", description: nil, parameters: .object([:]))]
        guard case .toolCalls(let calls) = try MockPlan(for: r, callNumber: 1).action, let call = calls.first else {
            Issue.record("no tool call"); return
        }
        #expect(calls.count == 1 && call.name == "lookup" && call.arguments == #"{"sku": "sku-0042"}"#)
        r.messages += [
            ChatMessage(role: .assistant, text: "", toolCalls: [call]),
            ChatMessage(role: .tool, text: #"{"price_cents": 1234}"#, toolCallID: call.id)
        ]
        let answer = try MockPlan(for: r, callNumber: 2)
        #expect(answer.action == .answer && answer.finishReason == "stop")
        #expect(MockPlan.words(answer.text) == 20 && answer.chunks.count == 20 && answer.text.hasPrefix("alpha bravo"))
        #expect(!answer.text.contains("returned"), "words=N answers the words, not the tool's result")
        r.messages[0] = ChatMessage(role: .user, text: #"[mock tool=lookup reply="done"] go"#)
        #expect(try MockPlan(for: r, callNumber: 2).text == "done")
    }

    @Test func parallelCallsAndSeveralSteps() throws {
        var r = request(#"[mock tool=a,b args='[{"x": 1}, {"y": 2}]' steps=2] go"#)
        r.tools = ["a", "b"].map { ToolSpec(name: $0, description: nil, parameters: .object([:])) }
        guard case .toolCalls(let first) = try MockPlan(for: r, callNumber: 1).action else { Issue.record("no calls"); return }
        #expect(first.map(\.name) == ["a", "b"] && first.map(\.arguments) == [#"{"x":1}"#, #"{"y":2}"#])
        r.messages +=
            [ChatMessage(role: .assistant, text: "", toolCalls: first)]
            + first.map { ChatMessage(role: .tool, text: "r-\($0.name)", toolCallID: $0.id) }
        guard case .toolCalls(let second) = try MockPlan(for: r, callNumber: 1).action else { Issue.record("no step 2"); return }
        #expect(second.map(\.id) == ["call_mock_2_1", "call_mock_2_2"])
        r.messages +=
            [ChatMessage(role: .assistant, text: "", toolCalls: second)]
            + second.map { ChatMessage(role: .tool, text: "s-\($0.name)", toolCallID: $0.id) }
        #expect(try MockPlan(for: r, callNumber: 1).text == "a returned: s-a; b returned: s-b")
    }

    @Test func schemaAnswersAreJSONAndBadJSONCountsRepairs() throws {
        let schema = JSONValue.object(["type": .string("object"), "properties": .object(["n": .object(["type": .string("integer")])])])
        #expect(try MockPlan(for: request("x", schema: schema), callNumber: 1).text == #"{"n":1}"#)
        let bad = request("[mock bad_json=1] x", schema: schema)
        #expect(try MockPlan(for: bad, callNumber: 1).text.hasPrefix("not json"))
        let repair = request(
            "[mock bad_json=1] x", schema: schema,
            extra: [
                ChatMessage(role: .assistant, text: "not json"),
                ChatMessage(role: .user, text: Generator.repairPrefix + ": fix it")
            ])
        #expect(MockPlan.repairRounds(in: repair.messages) == 1)
        #expect(try MockPlan(for: repair, callNumber: 2).text == #"{"n":1}"#)
    }
}

@Suite struct ThreadViewTests {
    @Test func deltasGrowThePendingMessageOnceEachInOrderThenTheSavedRowWins() {
        let message = UUID(), stream = UUID()
        func delta(_ seq: Int, _ text: String) -> ThreadEvent {
            ThreadEvent(
                type: "stream.delta", threadID: nil, jobID: 1, messageID: message, streamID: stream, seq: seq,
                status: nil, text: text, truncated: nil)
        }
        var view = ThreadView()
        view.load([UIMessage(id: UUID(), role: "user", text: "hi", status: "success", ord: 0, step: 0, jobID: nil)])
        view.apply(delta(0, "Hel"))
        view.apply(delta(0, "Hel"))  // a duplicate after a reconnect
        view.apply(delta(2, "!"))  // ahead of a gap: left for the follower to fill
        view.apply(delta(1, "lo"))
        #expect(view.messages.map(\.text) == ["hi", "Hello"])
        #expect(view.needsReload.contains(message))
        view.load([UIMessage(id: message, role: "assistant", text: "Hello!", status: "success", ord: 0, step: 1, jobID: 1)])
        #expect(view.messages.map(\.text) == ["hi", "Hello!"] && view.messages[1].status == "success")
        #expect(view.needsReload.isEmpty && view.lastSeen[stream] == 1)
    }
}
