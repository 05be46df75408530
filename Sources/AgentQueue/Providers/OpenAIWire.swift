import Foundation

/// The OpenAI Chat Completions wire format (pure: bodies in, values out), shared by the `openai`
/// provider and `agentq mock-llm`.
public enum OpenAIWire {
    /// The JSON body of a chat completion request.
    public static func requestBody(_ request: ChatRequest, stream: Bool, includeUsage: Bool) -> String {
        var w = JSONWriter(capacity: 512 + request.messages.reduce(0) { $0 + $1.text.utf8.count + 40 })
        w.beginObject()
        w.key("model"); w.string(request.model)
        w.key("messages"); w.beginArray()
        if let instructions = request.instructions, !instructions.isEmpty {
            w.beginObject(); w.key("role"); w.string("system"); w.key("content"); w.string(instructions); w.endObject()
        }
        for m in request.messages {
            w.beginObject()
            w.key("role"); w.string(m.role.rawValue)
            if m.role == .assistant && !m.toolCalls.isEmpty && m.text.isEmpty {
                w.key("content"); w.null()
            } else {
                w.key("content"); w.string(m.text)
            }
            if !m.toolCalls.isEmpty {
                w.key("tool_calls"); w.beginArray()
                for call in m.toolCalls {
                    w.beginObject()
                    w.key("id"); w.string(call.id)
                    w.key("type"); w.string("function")
                    w.key("function"); w.beginObject()
                    w.key("name"); w.string(call.name); w.key("arguments"); w.string(call.arguments)
                    w.endObject()
                    w.endObject()
                }
                w.endArray()
            }
            w.field("tool_call_id", m.toolCallID)
            w.endObject()
        }
        w.endArray()
        w.key("stream"); w.bool(stream)
        if stream && includeUsage {
            w.key("stream_options"); w.beginObject(); w.key("include_usage"); w.bool(true); w.endObject()
        }
        if let t = request.temperature { w.key("temperature"); w.double(t) }
        if let n = request.maxTokens { w.key("max_tokens"); w.int(n) }
        if let schema = request.responseSchema {
            w.key("response_format"); w.beginObject()
            w.key("type"); w.string("json_schema")
            w.key("json_schema"); w.beginObject()
            w.key("name"); w.string("output"); w.key("schema"); w.value(schema)
            w.endObject()
            w.endObject()
        }
        if !request.tools.isEmpty {
            w.key("tools"); w.beginArray()
            for tool in request.tools {
                w.beginObject()
                w.key("type"); w.string("function")
                w.key("function"); w.beginObject()
                w.key("name"); w.string(tool.name)
                w.field("description", tool.description)
                w.key("parameters"); w.value(tool.parameters)
                w.endObject()
                w.endObject()
            }
            w.endArray()
        }
        w.endObject()
        return w.text
    }

    /// What one streamed chunk (`chat.completion.chunk`) carries.
    public struct Chunk: Sendable, Hashable {
        public var content: String?
        public var toolCallFragments: [ToolCallFragment] = []
        public var finishReason: String?
        public var usage: TokenUsage?
        /// An error object the server sent inside the stream.
        public var error: String?
    }

    public struct ToolCallFragment: Sendable, Hashable {
        public var index: Int
        public var id: String?
        public var name: String?
        public var arguments: String?
    }

    /// Parses the `data` of one SSE event (not `[DONE]`).
    public static func parseChunk(_ data: String) throws -> Chunk {
        let root = try object(data, named: "stream chunk")
        var chunk = Chunk()
        if let error = root["error"] { chunk.error = errorMessage(error) }
        chunk.usage = root["usage"]?.objectValue.flatMap(usage)
        if let choice = root["choices"]?.arrayValue?.first?.objectValue {
            chunk.finishReason = choice["finish_reason"]?.stringValue
            if let delta = choice["delta"]?.objectValue {
                chunk.content = delta["content"]?.stringValue
                for call in delta["tool_calls"]?.arrayValue ?? [] {
                    guard call.objectValue != nil else { continue }
                    let function = call["function"]
                    chunk.toolCallFragments.append(
                        ToolCallFragment(
                            index: call["index"]?.intValue ?? 0, id: call["id"]?.stringValue,
                            name: function?["name"]?.stringValue, arguments: function?["arguments"]?.stringValue))
                }
            }
        }
        return chunk
    }

    /// Parses a whole (non-streamed) chat completion.
    public static func parseCompletion(_ body: String) throws -> ChatReply {
        let root = try object(body, named: "response")
        if let error = root["error"] { throw GenerationError(.transient, "the model returned an error: \(errorMessage(error))") }
        guard let choice = root["choices"]?.arrayValue?.first?.objectValue, let message = choice["message"]?.objectValue else {
            throw GenerationError(.transient, "the model's response has no choices[0].message")
        }
        var calls: [AssembledToolCall] = []
        for call in message["tool_calls"]?.arrayValue ?? [] {
            guard call.objectValue != nil, let name = call["function"]?["name"]?.stringValue else { continue }
            calls.append(
                AssembledToolCall(
                    id: call["id"]?.stringValue ?? "call_\(calls.count)", name: name,
                    arguments: call["function"]?["arguments"]?.stringValue ?? "{}"))
        }
        return ChatReply(
            text: message["content"]?.stringValue ?? "", finishReason: choice["finish_reason"]?.stringValue ?? "stop",
            usage: root["usage"]?.objectValue.flatMap(usage), toolCalls: calls)
    }

    /// The JSON object the model sent: nesting past `Limits.jsonDepth` is a permanent fault (the
    /// same request gets the same answer), anything else that is not an object a transient one.
    private static func object(_ text: String, named what: String) throws -> [String: JSONValue] {
        let value: JSONValue
        do {
            value = try JSONValue.parse(text)
        } catch is JSONDepthError {
            throw GenerationError(.permanent, "the model sent a \(what) nested more than \(Limits.jsonDepth) levels deep")
        } catch {
            value = .null
        }
        guard let object = value.objectValue else {
            throw GenerationError(.transient, "the model sent a \(what) that is not a JSON object: \(text.prefix(200))")
        }
        return object
    }

    /// Parses an embeddings response: the vectors in input order, and the tokens counted.
    public static func parseEmbeddings(_ body: String) throws -> (vectors: [[Float]], promptTokens: Int) {
        guard (try? JSONValue.checkDepth(body)) != nil,
            let root = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let data = root["data"] as? [Any]
        else {
            throw GenerationError(.transient, "the embeddings response has no data array: \(body.prefix(200))")
        }
        var vectors = [[Float]](repeating: [], count: data.count)
        for (position, element) in data.enumerated() {
            guard let item = element as? [String: Any] else {
                throw GenerationError(.transient, "the embeddings response has a malformed item at \(position)")
            }
            let index = (item["index"] as? Int) ?? position
            guard index >= 0 && index < data.count, let values = item["embedding"] as? [Any] else {
                throw GenerationError(.transient, "the embeddings response has a malformed item at \(position)")
            }
            vectors[index] = values.map { Float(($0 as? NSNumber)?.doubleValue ?? 0) }
        }
        let tokens = ((root["usage"] as? [String: Any])?["prompt_tokens"] as? Int) ?? 0
        return (vectors, tokens)
    }

    /// The readable message of an OpenAI error body (`{"error": {"message": ...}}`), or the text.
    public static func errorMessage(body: String) -> String {
        if let e = (try? JSONValue.parse(body))?["error"] { return errorMessage(e) }
        return String(body.prefix(500))
    }

    private static func errorMessage(_ error: JSONValue) -> String {
        if let e = error.objectValue { return e["message"]?.stringValue ?? error.jsonString }
        return error.stringValue ?? error.jsonString
    }

    private static func usage(_ u: [String: JSONValue]) -> TokenUsage? {
        guard let prompt = u["prompt_tokens"]?.intValue else { return nil }
        return TokenUsage(promptTokens: prompt, completionTokens: u["completion_tokens"]?.intValue ?? 0)
    }

    /// Seconds from a `Retry-After` header (delta-seconds, or an HTTP date).
    public static func retryAfter(_ header: String?, now: Date = Date()) -> Duration? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        // Clamped to `Limits.retryAfter`: a server's `1e300` or `inf` must not trap the conversion.
        let most = Limits.retryAfter.seconds
        if let seconds = Double(header), seconds >= 0 { return .milliseconds(Int(min(seconds, most) * 1000)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: header) else { return nil }
        return .milliseconds(Int(min(max(0, date.timeIntervalSince(now)), most) * 1000))
    }
}
