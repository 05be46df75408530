import Foundation
import Testing

@testable import AgentQueue

/// No poison job: numbers, schemas, JSON and mock directives a producer or a model supplies are
/// range-checked where they are read, and nothing traps, hangs or grows without bound (README: Limits).
@Suite struct PoisonInputTests {
    static let agent = AgentRecord(name: "a", model: "mock:m", instructions: nil, tools: [], embeddingModel: nil, options: .object([:]))

    /// Integral numbers in range of Int but not of the setting are clamped to the setting's range.
    @Test func settingsClampEveryNumber() throws {
        let options = try JSONValue.parse(
            #"{"max_steps": 9e18, "max_retries": 9e18, "timeout_ms": -5, "max_tokens": 9e18, "context": {"recent_messages": -3}}"#)
        let s = try GenerationSettings(agent: Self.agent, threadOptions: options, jobOptions: .object([:]))
        #expect(s.maxSteps == Limits.maxSteps && s.maxRetries == Limits.maxRetries)
        #expect(s.timeout == .milliseconds(1) && s.maxTokens == Limits.maxTokens && s.recentMessages == 0)
        let huge = try JSONValue.parse(#"{"timeout_ms": 9e18, "context": {"recent_messages": 9e18}}"#)
        let t = try GenerationSettings(agent: Self.agent, threadOptions: nil, jobOptions: huge)
        #expect(t.timeout == .milliseconds(Limits.timeoutMilliseconds) && t.recentMessages == Limits.recentMessages)
    }

    /// The mock's structured output never builds an array or string as long as a schema's minimum.
    @Test func schemaMinimumsDoNotExhaustMemory() throws {
        let schema = try JSONValue.parse(
            #"{"type": "object", "properties": {"a": {"type": "array", "minItems": 1e15, "items": {"type": "integer", "minimum": 1e300}}, "s": {"type": "string", "minLength": 1e15}}}"#
        )
        let request = ChatRequest(
            model: "m", instructions: nil, messages: [ChatMessage(role: .user, text: "x")], attempt: 1, responseSchema: schema)
        let object = try JSONValue.parse(try MockPlan(for: request, callNumber: 1).text)
        #expect(object["a"]?.arrayValue?.count == Limits.mockSampleSize)
        #expect(object["s"]?.stringValue?.count == Limits.mockSampleSize)
        // The validator compares such numbers without converting them.
        let problems = JSONSchemaValidator(schema: schema).problems(in: object)
        #expect(problems.contains { $0.contains("needs at least") })
    }

    /// A catastrophic backtrack (`^(x+x+)+y$` on 32 x's) is given up at the time budget.
    @Test(.timeLimit(.minutes(1))) func catastrophicPatternIsBounded() {
        let validator = JSONSchemaValidator(schema: .object(["type": .string("string"), "pattern": .string("^(x+x+)+y$")]))
        let started = ContinuousClock.now
        let problems = validator.problems(in: .string(String(repeating: "x", count: 32)))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(problems.count == 1 && problems[0].contains("within"), "\(problems)")
        // Ordinary patterns still match; over-long patterns and inputs are refused.
        #expect(JSONSchemaValidator(schema: .object(["pattern": .string("^a+b$")])).problems(in: .string("aaab")).isEmpty)
        #expect(JSONSchemaValidator(schema: .object(["pattern": .string("^a+b$")])).problems(in: .string("ba")).count == 1)
        let long = JSONSchemaValidator(schema: .object(["pattern": .string(String(repeating: "a", count: 2_000))]))
        #expect(long.problems(in: .string("a"))[0].contains("over \(Limits.schemaPatternLength) characters"))
    }

    /// Nested `anyOf`s that would multiply into 2^40 checks stop at the step budget.
    @Test(.timeLimit(.minutes(1))) func nestedAnyOfIsBounded() {
        var schema = JSONValue.object(["type": .string("string")])
        for _ in 0..<40 { schema = .object(["anyOf": .array([.object(["type": .string("number")]), schema, schema])]) }
        let problems = JSONSchemaValidator(schema: schema).problems(in: .string("x"))
        #expect(problems.contains { $0.contains("more than \(Limits.schemaSteps) steps") }, "\(problems.suffix(2))")
    }

    /// JSON nested 10,000 deep is refused before anything recursive sees it; 128 levels pass.
    @Test func deepJSONIsRefused() throws {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONDepthError.self) { try JSONValue.parse(deep) }
        let ok = String(repeating: "{\"a\":", count: 128) + "1" + String(repeating: "}", count: 128)
        #expect(try JSONValue.parse(ok) != .null)
        #expect(try JSONValue.parse(#"{"s": "[[[[\"]]]"}"#)["s"] == .string(#"[[[["]]]"#))
        // Too deep is permanent (the same request gets the same answer); not an object is transient.
        #expect(throws: GenerationError.self) { try OpenAIWire.parseChunk(deep) }
        let tooDeep = #expect(throws: GenerationError.self) { try OpenAIWire.parseCompletion("{\"choices\": " + deep + "}") }
        #expect(tooDeep?.kind == .permanent)
        let notAnObject = #expect(throws: GenerationError.self) { try OpenAIWire.parseChunk("[1, 2]") }
        #expect(notAnObject?.kind == .transient && notAnObject?.message.contains("not a JSON object") == true)
        let plan = ToolStepPlan(
            [AssembledToolCall(id: "c", name: "t", arguments: deep)],
            tools: ["t": ToolDefinition(name: "t", description: "", parameters: .object([:]), kind: .client)])
        #expect(plan.calls[0].disposition == .rejected("the arguments are nested more than 128 levels deep: " + deep.prefix(200)))
    }

    /// `[mock words=N]` past the cap is a clear permanent error, not gigabytes of words.
    @Test func mockWordsAreCapped() throws {
        #expect(throws: GenerationError.self) { try MockScript(parsing: "[mock words=2000000000]") }
        #expect(try MockScript(parsing: "[mock words=\(Limits.mockWords)]").words == Limits.mockWords)
    }

    /// A server's Retry-After of `1e300` or `inf` is clamped, never a trapping conversion.
    @Test func retryAfterIsClamped() {
        #expect(OpenAIWire.retryAfter("1e300") == Limits.retryAfter)
        #expect(OpenAIWire.retryAfter("inf") == Limits.retryAfter)
        #expect(OpenAIWire.retryAfter("2") == .seconds(2))
    }

    /// An SSE line or event past its cap stops the parser with a reason, holding no more than the cap.
    @Test func sseBuffersAreBounded() {
        var p = SSEParser()
        let mib = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        _ = p.feed(Array("data: ".utf8))
        for _ in 0..<9 { _ = p.feed(mib) }
        #expect(p.overflow?.contains("line over \(Limits.sseLineBytes) bytes") == true)
        var q = SSEParser()
        let line = Array("data: ".utf8) + [UInt8](repeating: UInt8(ascii: "y"), count: 1 << 20) + [UInt8(ascii: "\n")]
        for _ in 0..<9 { _ = q.feed(line) }
        #expect(q.overflow?.contains("event with over \(Limits.sseEventBytes) bytes") == true)
    }

    /// Tool calls past the count or argument caps are refused with a reason.
    @Test func toolCallsAreBounded() throws {
        var many = ToolCallAssembler()
        for i in 0..<10_000 { many.add(index: i, id: "c\(i)", name: "t", argumentsFragment: "{}") }
        #expect(throws: GenerationError.self) { try many.calls() }
        #expect(many.overflow?.contains("more than \(Limits.toolCallsPerStep) tool calls") == true)
        var open = ToolCallAssembler()
        open.add(index: 0, id: "c", name: "t", argumentsFragment: "{\"x\": \"")
        for _ in 0..<20 { open.add(index: 0, id: nil, name: nil, argumentsFragment: String(repeating: "a", count: 64 << 10)) }
        #expect(open.overflow?.contains("over \(Limits.toolArgumentsBytes) bytes") == true)
        let reply = ChatReply(
            text: "", finishReason: "tool_calls", usage: nil,
            toolCalls: (0..<200).map { AssembledToolCall(id: "c\($0)", name: "t", arguments: "{}") })
        #expect(throws: GenerationError.self) { try Generator.checkLimits(reply) }
    }

    /// A tool output over the cap becomes an error result.
    @Test func toolOutputsAreCapped() {
        let tool = ToolDefinition(name: "big", description: "", parameters: .object([:]), kind: .client)
        let result = ToolCaller.capped(ToolResult(value: .string(String(repeating: "x", count: 2 << 20)), isError: false), tool)
        #expect(result.isError && result.text.contains("over the limit of \(Limits.toolOutputBytes)"))
        #expect(!ToolCaller.capped(ToolResult(value: .string("small"), isError: false), tool).isError)
    }

    /// The mock provider is registered only when allowed; a mock model elsewhere is a clear error.
    @Test func mockModelsOnlyWhenAllowed() throws {
        #expect(!ModelRegistry(models: ModelRegistry.defaultModels(environment: [:])).allowsMock)
        #expect(ModelRegistry(models: ModelRegistry.defaultModels(environment: ["AGENTQ_ALLOW_MOCK_MODELS": "1"])).allowsMock)
        let registry = ModelRegistry(models: [:])
        registry.update(with: [ProviderRecord(name: "fake", kind: .mock, baseURL: nil, apiKeyEnv: nil, options: .object([:]))])
        for name in ["mock", "fake"] {
            do {
                _ = try registry.model(forProvider: name)
                Issue.record("\(name) should not resolve")
            } catch let error as GenerationError {
                #expect(error.kind == .permanent && error.message.contains("--allow-mock-models"))
            }
        }
    }
}
