import AgentQueue
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// `agentq mock-llm`: the mock model (`MockScript` directives) served over the OpenAI wire format:
/// `POST /v1/chat/completions` (streamed as SSE or whole), `POST /v1/embeddings`, `GET /v1/models`.
/// Scripted faults count the calls seen for the same prompt (the last user message), so a retried
/// call or job meets the fault the given number of times and then succeeds.
public struct MockLLMServer: Sendable {
    public var host: String
    public var port: Int
    /// Dimensions of embeddings when neither the request (`dimensions`) nor the model's name (`embed-N`) says.
    public var embeddingDimensions: Int
    public var logger: Logger

    public init(host: String = "127.0.0.1", port: Int, embeddingDimensions: Int = 16, logger: Logger) {
        self.host = host
        self.port = port
        self.embeddingDimensions = embeddingDimensions
        self.logger = logger
    }

    /// The HTTP application (a `Service`; `runService()` runs it until a shutdown signal).
    public func application(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let calls = RequestCounter()
        let dimensions = embeddingDimensions
        let router = Router()
        router.get("/health") { _, _ in "ok" }
        router.get("/v1/models") { _, _ -> Response in
            Self.json(.ok, #"{"object":"list","data":[{"id":"mock","object":"model","created":0,"owned_by":"agentq"}]}"#)
        }
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 32 * 1024 * 1024))
            let parsed: OpenAIWire.ServerRequest
            do {
                parsed = try OpenAIWire.parseRequest(body)
            } catch {
                return Self.json(.badRequest, OpenAIWire.errorJSON(message: "\(error)", type: "invalid_request_error"))
            }
            let key = MockPlan.promptIndex(in: parsed.chat.messages).map { parsed.chat.messages[$0].text } ?? ""
            let plan: MockPlan
            do {
                plan = try MockPlan(for: parsed.chat, callNumber: calls.next(key))
            } catch {
                return Self.json(.badRequest, OpenAIWire.errorJSON(message: "\(error)", type: "invalid_request_error"))
            }
            return try await Self.respond(plan, parsed)
        }
        // Endpoints for HTTP tools: `/tools/echo` answers what it got (args, ctx, Idempotency-Key),
        // `/tools/status/N` answers status N, `/tools/big` answers 2 MiB, `/tools/redirect` a 307,
        // `/tools/slow` after 5 s; `/tools/calls` counts the
        // tool requests received (to prove a refused call never arrived).
        let toolCalls = RequestCounter()
        router.post("/tools/echo") { request, _ -> Response in
            _ = toolCalls.next("tools")
            let body = (try? JSONValue.parse(String(buffer: try await request.body.collect(upTo: 1 << 20)))) ?? .null
            let key = request.headers[HTTPField.Name("Idempotency-Key")!].map(JSONValue.string) ?? .null
            return Self.json(
                .ok,
                JSONValue.object([
                    "echo": body["args"] ?? .null, "ctx": body["ctx"] ?? .null,
                    "idempotency_key": key
                ]).jsonString)
        }
        router.post("/tools/status/:code") { request, context -> Response in
            _ = toolCalls.next("tools")
            let code = context.parameters.get("code", as: Int.self) ?? 500
            return Self.json(.init(code: code), #"{"error": "mock tool answered \#(code)"}"#)
        }
        router.post("/tools/big") { _, _ -> Response in
            _ = toolCalls.next("tools")
            return Self.json(.ok, "\"" + String(repeating: "x", count: 2 << 20) + "\"")
        }
        // Redirects to /tools/echo on `localhost` (tests allow only 127.0.0.1, so following it would
        // reach a host not on the list).
        router.post("/tools/redirect") { request, _ -> Response in
            _ = toolCalls.next("tools")
            let port = request.head.authority?.split(separator: ":").last.map(String.init) ?? "80"
            var headers = HTTPFields()
            headers[.location] = "http://localhost:\(port)/tools/echo"
            return Response(status: .temporaryRedirect, headers: headers)
        }
        router.post("/tools/slow") { _, _ -> Response in
            _ = toolCalls.next("tools")
            try await Task.sleep(for: .seconds(5))
            return Self.json(.ok, #"{"late": true}"#)
        }
        router.get("/tools/calls") { _, _ -> Response in
            Self.json(.ok, "\(toolCalls.count("tools"))")
        }
        let embedCalls = RequestCounter()
        router.post("/v1/embeddings") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 32 * 1024 * 1024))
            guard case .object(let root)? = try? JSONValue.parse(body), let model = root["model"]?.stringValue else {
                return Self.json(
                    .badRequest,
                    OpenAIWire.errorJSON(
                        message: "the body needs \"model\" and \"input\"",
                        type: "invalid_request_error"))
            }
            let inputs: [String]
            switch root["input"] {
            case .string(let s)?: inputs = [s]
            case .array(let a)?: inputs = a.compactMap(\.stringValue)
            default:
                return Self.json(
                    .badRequest,
                    OpenAIWire.errorJSON(
                        message: "\"input\" must be a string or an array of strings",
                        type: "invalid_request_error"))
            }
            let plan = MockEmbedding.Plan(model: model)
            if plan.permanent {
                return Self.json(
                    .badRequest,
                    OpenAIWire.errorJSON(
                        message: "mock: embedding model \"\(model)\" always fails",
                        type: "invalid_request_error"))
            }
            if plan.failures > 0, embedCalls.next(model) <= plan.failures {
                return Self.json(
                    .internalServerError,
                    OpenAIWire.errorJSON(
                        message: "mock: embedding request failed on purpose",
                        type: "server_error"))
            }
            if inputs.contains(where: MockEmbedding.refuses) {
                return Self.json(
                    .badRequest,
                    OpenAIWire.errorJSON(
                        message: "mock: an input asks to be refused",
                        type: "invalid_request_error"))
            }
            let dims = root["dimensions"]?.intValue ?? plan.dimensions ?? dimensions
            let vectors = inputs.map { MockEmbedding.vector(for: $0, dimensions: dims) }
            let tokens = inputs.reduce(0) { $0 + MockPlan.words($1) }
            return Self.json(.ok, OpenAIWire.embeddingsJSON(model: model, vectors: vectors, promptTokens: tokens))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "agentq-mock-llm"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    static func json(_ status: HTTPResponse.Status, _ text: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func respond(_ plan: MockPlan, _ request: OpenAIWire.ServerRequest) async throws -> Response {
        let chat = request.chat
        switch plan.action {
        case .failPermanently:
            return json(
                .badRequest,
                OpenAIWire.errorJSON(
                    message: "mock: permanent failure requested by the prompt",
                    type: "invalid_request_error"))
        case .fail(.rateLimited, let seconds):
            return json(
                .tooManyRequests,
                OpenAIWire.errorJSON(
                    message: "mock: rate limited", type: "rate_limit_error",
                    code: "rate_limit_exceeded"),
                headers: [.retryAfter: "\(seconds)"])
        case .fail(.serverError, _):
            return json(.internalServerError, OpenAIWire.errorJSON(message: "mock: server error", type: "server_error"))
        case .fail(.hang, _):
            try await Task.sleep(for: .seconds(3600))  // the client's timeout ends the call
            return json(.gatewayTimeout, OpenAIWire.errorJSON(message: "mock: hung for an hour", type: "server_error"))
        case .fail(.cut, _), .answer, .toolCalls:
            break
        }
        let id = "chatcmpl-mock\(UInt32.random(in: 0...UInt32.max))"
        let created = Int(Date().timeIntervalSince1970)
        let toolCalls: [AssembledToolCall]
        if case .toolCalls(let calls) = plan.action { toolCalls = calls } else { toolCalls = [] }
        guard request.stream else {
            if plan.initialDelay > .zero { try await Task.sleep(for: plan.initialDelay) }
            if case .fail(.cut, _) = plan.action {
                return json(.internalServerError, OpenAIWire.errorJSON(message: "mock: cut", type: "server_error"))
            }
            return json(
                .ok,
                OpenAIWire.completionJSON(
                    id: id, model: chat.model, created: created,
                    text: toolCalls.isEmpty ? plan.text : nil, toolCalls: toolCalls,
                    finishReason: plan.finishReason, usage: plan.usage))
        }
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        headers[.connection] = "keep-alive"
        return Response(
            status: .ok, headers: headers,
            body: .init { writer in
                func send(_ data: String) async throws {
                    try await writer.write(ByteBuffer(string: "data: \(data)\n\n"))
                }
                if plan.initialDelay > .zero { try await Task.sleep(for: plan.initialDelay) }
                try await send(OpenAIWire.chunkJSON(id: id, model: chat.model, created: created, role: true, content: ""))
                if let hostile = plan.hostile, ![.manyCalls, .deepArgs].contains(hostile) {
                    try await actOut(
                        hostile, toolCalls: toolCalls,
                        chunk: { OpenAIWire.chunkJSON(id: id, model: chat.model, created: created, content: $0) },
                        toolChunk: { OpenAIWire.chunkJSON(id: id, model: chat.model, created: created, toolCall: $0) },
                        write: { try await writer.write($0) })
                }
                if case .fail(.cut, _) = plan.action {
                    for chunk in plan.chunks.prefix(plan.chunks.count / 2) {
                        if plan.chunkInterval > .zero { try await Task.sleep(for: plan.chunkInterval) }
                        try await send(OpenAIWire.chunkJSON(id: id, model: chat.model, created: created, content: chunk))
                    }
                    throw MockCut()  // closes the connection without ending the chunked body
                }
                for (index, call) in toolCalls.enumerated() {
                    let half = call.arguments.index(call.arguments.startIndex, offsetBy: call.arguments.count / 2)
                    try await send(
                        OpenAIWire.chunkJSON(
                            id: id, model: chat.model, created: created,
                            toolCall: (index, call, true, String(call.arguments[..<half]))))
                    try await send(
                        OpenAIWire.chunkJSON(
                            id: id, model: chat.model, created: created,
                            toolCall: (index, call, false, String(call.arguments[half...]))))
                }
                if toolCalls.isEmpty {
                    for chunk in plan.chunks {
                        if plan.chunkInterval > .zero { try await Task.sleep(for: plan.chunkInterval) }
                        try await send(OpenAIWire.chunkJSON(id: id, model: chat.model, created: created, content: chunk))
                    }
                }
                try await send(OpenAIWire.chunkJSON(id: id, model: chat.model, created: created, finishReason: plan.finishReason))
                if request.includeUsage {
                    try await send(OpenAIWire.chunkJSON(id: id, model: chat.model, created: created, usage: plan.usage, noChoices: true))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
    }
}

extension MockLLMServer {
    /// Streams as a hostile model would (`hostile=MODE`), to test the client's caps (README: Limits),
    /// until the client gives up and closes the connection; it never ends the stream properly.
    static func actOut(
        _ hostile: MockScript.Hostile, toolCalls: [AssembledToolCall], chunk: (String) -> String,
        toolChunk: ((index: Int, call: AssembledToolCall, first: Bool, arguments: String)) -> String,
        write: (ByteBuffer) async throws -> Void
    ) async throws {
        func send(_ data: String) async throws { try await write(ByteBuffer(string: "data: \(data)\n\n")) }
        switch hostile {
        case .endless:  // a word every 20 ms, for as long as anyone listens
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(20))
                try await send(chunk("more "))
            }
        case .longLine:  // 100 MB on one line, never ended
            try await write(ByteBuffer(string: "data: "))
            let piece = ByteBuffer(repeating: UInt8(ascii: "x"), count: 1 << 20)
            for _ in 0..<100 { try await write(piece) }
        case .bigReply:  // 100 MB of text in 64 KiB chunks
            let piece = chunk(String(repeating: "x", count: 64 << 10))
            for _ in 0..<1_600 { try await send(piece) }
        case .openArgs:  // one call whose arguments never close
            let call = toolCalls.first ?? AssembledToolCall(id: "call_open", name: "lookup", arguments: "")
            try await send(toolChunk((0, call, true, #"{"x": ""#)))
            let piece = toolChunk((0, call, false, String(repeating: "a", count: 64 << 10)))
            for _ in 0..<100_000 { try await send(piece) }
        case .manyCalls, .deepArgs:
            return  // in the plan's tool calls, streamed as usual
        }
        // Never end the stream: a cut could reach the client before the bytes it must refuse.
        try await Task.sleep(for: .seconds(3600))
        throw MockCut()
    }
}

struct MockCut: Error {}
