import AgentQueue
import AsyncHTTPClient
import Foundation
import Synchronization
import Testing

/// The `openai` provider against a real `agentq mock-llm` over HTTP: streamed and whole replies,
/// embeddings, and how each fault is classified.
@Suite struct ProviderHTTPTests {
    static func withModel(
        stream: Bool = true, headerTimeout: Duration = .seconds(10),
        _ body: @Sendable (OpenAIModel) async throws -> Void
    ) async throws {
        let mock = try await MockLLMProcess()
        var configuration = HTTPClient.Configuration()
        // Generous: the full suite loads both cores, and a freshly started debug mock can be slow to answer.
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(20))
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        do {
            try await body(
                OpenAIModel(
                    http: http,
                    endpoint: .init(
                        baseURL: mock.baseURL, apiKeyEnv: "AGENTQ_TEST_NO_SUCH_KEY",
                        stream: stream, headerTimeout: headerTimeout)))
        } catch {
            try await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    static func request(_ prompt: String) -> ChatRequest {
        ChatRequest(model: "mock", instructions: "be brief", messages: [ChatMessage(role: .user, text: prompt)], attempt: 1)
    }

    @Test func streamedAndWholeRepliesCarryTextAndUsage() async throws {
        for stream in [true, false] {
            try await Self.withModel(stream: stream) { model in
                let pieces = Mutex<[String]>([])
                let reply = try await model.complete(Self.request("[mock words=12] go")) { t in pieces.withLock { $0.append(t) } }
                #expect(reply.text == "alpha bravo charlie delta echo foxtrot golf hotel india juliet alpha bravo")
                #expect(pieces.withLock { $0.joined() } == reply.text)
                #expect(pieces.withLock { $0.count } == (stream ? 12 : 1))
                #expect(reply.usage == TokenUsage(promptTokens: 5, completionTokens: 12) && reply.finishReason == "stop")
            }
        }
    }

    @Test func toolCallsAreAssembledFromStreamedFragments() async throws {
        try await Self.withModel { model in
            var request = Self.request(#"[mock tool=weather,time args='[{"city": "Oslo"}, {"zone": "UTC"}]'] weather?"#)
            request.tools = ["weather", "time"].map {
                ToolSpec(name: $0, description: nil, parameters: .object(["type": .string("object")]))
            }
            let reply = try await model.complete(request)
            #expect(reply.finishReason == "tool_calls")
            #expect(reply.toolCalls.map(\.name) == ["weather", "time"])
            #expect(reply.toolCalls.map(\.arguments) == [#"{"city":"Oslo"}"#, #"{"zone":"UTC"}"#])
        }
    }

    @Test func embeddingsComeBackInInputOrder() async throws {
        try await Self.withModel { model in
            let (vectors, tokens) = try await model.embed(model: "mock-embed", inputs: ["red apple", "green apple", "fast car"])
            #expect(vectors.count == 3 && vectors.allSatisfy { $0.count == 16 } && tokens == 6)
            func cosine(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
            #expect(cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]))
        }
    }

    @Test func faultsAreClassifiedForTheRetryDecision() async throws {
        // Long enough for a loaded machine's replies, short enough for the `hang` case to end soon.
        try await Self.withModel(headerTimeout: .seconds(4)) { model in
            func failure(_ prompt: String) async -> GenerationError? {
                do { _ = try await model.complete(Self.request(prompt)); return nil } catch { return error as? GenerationError }
            }
            let limited = await failure("[mock fail=1 fault=429 retry_after=7] a")
            #expect(limited?.kind == .transient && limited?.retryableCall == true && limited?.retryAfter == .seconds(7))
            #expect(limited?.message.contains("HTTP 429") == true)
            let server = await failure("[mock fail=1 fault=500] b")
            #expect(server?.kind == .transient && server?.retryableCall == true)
            let cut = await failure("[mock fail=1 fault=cut words=10 tps=50] c")  // paced: text arrives before the cut
            #expect(cut?.kind == .transient && cut?.retryableCall == false)  // text was streamed: the job retries
            #expect(cut?.message.contains("cut") == true)
            let bad = await failure("[mock fail=permanent] d")
            #expect(bad?.kind == .permanent && bad?.message.contains("HTTP 400") == true)
            let hang = await failure("[mock fail=1 fault=hang] e")
            #expect(hang?.kind == .transient && hang?.retryableCall == true)
            // The same prompt after its scripted failures: answered.
            let answered = try await model.complete(Self.request("[mock fail=1 fault=500] b"))
            #expect(!answered.text.isEmpty)
        }
    }

    @Test func anUnreachableServerIsATransientRetryableFault() async throws {
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let model = OpenAIModel(http: http, endpoint: .init(baseURL: "http://127.0.0.1:9/v1", apiKeyEnv: nil))
        do {
            _ = try await model.complete(Self.request("x"))
            Issue.record("a call to a closed port succeeded")
        } catch let error as GenerationError {
            #expect(error.kind == .transient && error.retryableCall && error.message.contains("could not reach the model"))
        }
        try await http.shutdown()
    }
}
