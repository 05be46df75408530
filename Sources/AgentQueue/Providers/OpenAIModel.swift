import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The `openai` provider: any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, llama.cpp
/// server, Ollama, LM Studio, `agentq mock-llm`) over AsyncHTTPClient. Streams over SSE with usage
/// in the stream; one call, no retries (the runner retries calls and jobs).
///
/// Timeouts: connecting and the idle time between reads are the HTTP client's (`connect`, `read`);
/// `headerTimeout` bounds the wait for the response head and `callTimeout` the whole call (checked at
/// every chunk; the idle read timeout bounds the gap between chunks).
public struct OpenAIModel: ChatModel {
    /// The endpoint and its behaviour, from a `providers` row or the environment.
    public struct Endpoint: Sendable, Hashable {
        /// The API root, e.g. `https://api.openai.com/v1` (requests go to `<root>/chat/completions`).
        public var baseURL: String
        /// The name of the environment variable holding the key (never the key).
        public var apiKeyEnv: String?
        public var stream: Bool
        /// Ask for usage in the stream (`stream_options.include_usage`); some servers refuse it.
        public var includeUsage: Bool
        public var headerTimeout: Duration
        public var callTimeout: Duration

        public init(
            baseURL: String, apiKeyEnv: String?, stream: Bool = true, includeUsage: Bool = true,
            headerTimeout: Duration = .seconds(60), callTimeout: Duration = .seconds(600)
        ) {
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
            self.apiKeyEnv = apiKeyEnv
            self.stream = stream
            self.includeUsage = includeUsage
            self.headerTimeout = headerTimeout
            self.callTimeout = callTimeout
        }
    }

    public let http: HTTPClient
    public let endpoint: Endpoint

    public init(http: HTTPClient, endpoint: Endpoint) {
        self.http = http
        self.endpoint = endpoint
    }

    /// The key, read from the environment at each call (rotations apply without a restart).
    private var apiKey: String? {
        endpoint.apiKeyEnv.flatMap { ProcessInfo.processInfo.environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
    }

    private func post(_ path: String, body: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpoint.baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let key = apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        request.body = .bytes(ByteBuffer(string: body))
        return request
    }

    public func complete(_ request: ChatRequest, onText: @Sendable (String) -> Void) async throws -> ChatReply {
        let body = OpenAIWire.requestBody(request, stream: endpoint.stream, includeUsage: endpoint.includeUsage)
        let httpRequest = post("/chat/completions", body: body)
        let started = ContinuousClock.now
        let log = ExchangeLog(keep: request.keepExchange, url: endpoint.baseURL + "/chat/completions", request: body, started: started)
        var state = StreamState()
        do {
            let callDeadline = started + endpoint.callTimeout
            let response = try await http.execute(httpRequest, deadline: .now() + .init(endpoint.headerTimeout))
            guard response.status == .ok else {
                let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
                throw Self.statusError(response.status, headers: response.headers, body: text, log: log)
            }
            if !endpoint.stream {
                let text = String(buffer: try await response.body.collect(upTo: 32 * 1024 * 1024))
                var reply = try OpenAIWire.parseCompletion(text)
                if !reply.text.isEmpty { onText(reply.text) }
                reply.exchange = log.exchange(status: 200, response: text, error: nil)
                return reply
            }
            var parser = SSEParser()
            for try await buffer in response.body {
                for event in parser.feed(buffer.readableBytesView) {
                    if event.data == "[DONE]" { state.done = true; break }
                    try state.apply(OpenAIWire.parseChunk(event.data), log: log, onText: onText)
                }
                if let overflow = parser.overflow {
                    throw GenerationError(
                        .permanent, overflow, exchange: log.exchange(status: 200, response: state.text, error: overflow))
                }
                if state.done { break }
                if ContinuousClock.now > callDeadline { throw CallTimeout(limit: endpoint.callTimeout) }
            }
            guard state.done || state.finishReason != nil else {
                throw GenerationError(
                    .transient, "the model's stream ended before it finished (cut after \(state.text.utf8.count) bytes)",
                    exchange: log.exchange(status: 200, response: state.text, error: "stream cut"))
            }
            return ChatReply(
                text: state.text, finishReason: state.finishReason ?? "stop", usage: state.usage,
                toolCalls: try state.toolCalls.calls(),
                exchange: log.exchange(status: 200, response: state.text, error: nil))
        } catch let error as GenerationError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPClientError {
            let streamed = !state.text.isEmpty
            let message: String
            switch error {
            case .connectTimeout: message = "could not connect to \(endpoint.baseURL) in time"
            case .readTimeout: message = "the model sent nothing for too long (idle read timeout)"
            case .deadlineExceeded: message = "the model did not answer within \(endpoint.headerTimeout)"
            case .remoteConnectionClosed: message = "the model's server closed the connection" + (streamed ? " midway" : "")
            case .cancelled: throw CancellationError()
            default: message = "HTTP error calling \(endpoint.baseURL): \(error)"
            }
            throw GenerationError(
                .transient, message, retryableCall: !streamed,
                exchange: log.exchange(status: nil, response: state.text, error: message))
        } catch let error as CallTimeout {
            throw GenerationError(
                .transient, "the model call took longer than \(error.limit)",
                exchange: log.exchange(status: nil, response: state.text, error: "call timeout"))
        } catch {
            // Connection refused and other channel errors: nothing was streamed unless text arrived.
            let message =
                state.text.isEmpty
                ? "could not reach the model at \(endpoint.baseURL): \(error)"
                : "the model's stream was cut after \(state.text.utf8.count) bytes: \(error)"
            throw GenerationError(
                .transient, message, retryableCall: state.text.isEmpty,
                exchange: log.exchange(status: nil, response: state.text, error: message))
        }
    }

    /// Embeds `inputs` with `model` (`<root>/embeddings`); vectors come back in input order.
    public func embed(model: String, inputs: [String]) async throws -> (vectors: [[Float]], promptTokens: Int) {
        var w = JSONWriter()
        w.beginObject()
        w.key("model"); w.string(model)
        w.key("input"); w.beginArray(); for i in inputs { w.string(i) }; w.endArray()
        w.endObject()
        let request = post("/embeddings", body: w.text)
        do {
            let response = try await http.execute(request, deadline: .now() + .init(endpoint.headerTimeout))
            let text = String(buffer: try await response.body.collect(upTo: 64 * 1024 * 1024))
            guard response.status == .ok else {
                throw Self.statusError(response.status, headers: response.headers, body: text, log: nil)
            }
            let parsed = try OpenAIWire.parseEmbeddings(text)
            guard parsed.vectors.count == inputs.count else {
                throw GenerationError(.transient, "the embeddings response has \(parsed.vectors.count) vectors for \(inputs.count) inputs")
            }
            return parsed
        } catch let error as GenerationError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw GenerationError(
                .transient, "could not reach the embeddings endpoint at \(endpoint.baseURL): \(error)",
                retryableCall: true)
        }
    }

    /// A non-200 answer as a classified error: 429, 408 and 5xx may be retried; others cannot help.
    static func statusError(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: String, log: ExchangeLog?) -> GenerationError {
        let message = "the model answered HTTP \(status.code): \(OpenAIWire.errorMessage(body: body))"
        let exchange = log?.exchange(status: Int(status.code), response: body, error: message)
        switch status.code {
        case 429:
            return GenerationError(
                .transient, message, retryAfter: OpenAIWire.retryAfter(headers.first(name: "retry-after")),
                retryableCall: true, exchange: exchange)
        case 408, 409, 500...599:
            return GenerationError(
                .transient, message, retryAfter: OpenAIWire.retryAfter(headers.first(name: "retry-after")),
                retryableCall: true, exchange: exchange)
        default:
            return GenerationError(.permanent, message, exchange: exchange)
        }
    }
}

/// The text, tool calls and usage of one streamed reply as its chunks arrive.
private struct StreamState {
    var text = ""
    var toolCalls = ToolCallAssembler()
    var finishReason: String?
    var usage: TokenUsage?
    var done = false

    mutating func apply(_ chunk: OpenAIWire.Chunk, log: ExchangeLog, onText: (String) -> Void) throws {
        if let error = chunk.error {
            throw GenerationError(
                .transient, "the model reported an error mid-stream: \(error)",
                exchange: log.exchange(status: 200, response: text, error: error))
        }
        if let content = chunk.content, !content.isEmpty {
            guard text.utf8.count + content.utf8.count <= Limits.replyTextBytes else {
                let message = "the model's reply is over \(Limits.replyTextBytes) bytes"
                throw GenerationError(.permanent, message, exchange: log.exchange(status: 200, response: text, error: message))
            }
            text += content
            onText(content)
        }
        for f in chunk.toolCallFragments {
            toolCalls.add(index: f.index, id: f.id, name: f.name, argumentsFragment: f.arguments)
        }
        if let overflow = toolCalls.overflow {
            throw GenerationError(.permanent, overflow, exchange: log.exchange(status: 200, response: text, error: overflow))
        }
        if let reason = chunk.finishReason { finishReason = reason }
        if let u = chunk.usage { usage = u }
    }
}

/// Builds the `LLMExchange` of a call when the agent keeps raw calls.
struct ExchangeLog: Sendable {
    var keep: Bool
    var url: String
    var request: String
    var started: ContinuousClock.Instant

    func exchange(status: Int?, response: String?, error: String?) -> LLMExchange? {
        guard keep else { return nil }
        let responseValue = response.map { (try? JSONValue.parse($0)) ?? .string($0) }
        return LLMExchange(
            url: url, request: try? JSONValue.parse(request), response: responseValue, httpStatus: status,
            error: error, duration: ContinuousClock.now - started)
    }
}

struct CallTimeout: Error {
    var limit: Duration
}
