import Foundation

/// The server side of the wire format, for `agentq mock-llm`: reading requests and writing chunks,
/// completions and errors exactly as OpenAI's API does.
extension OpenAIWire {
    /// A parsed chat completion request.
    public struct ServerRequest: Sendable {
        public var chat: ChatRequest
        public var stream: Bool
        public var includeUsage: Bool
    }

    /// Parses a chat completion request body; throws a readable message for a malformed one.
    public static func parseRequest(_ body: String) throws -> ServerRequest {
        guard case .object(let root) = try JSONValue.parse(body) else { throw WireError("the body must be a JSON object") }
        guard let model = root["model"]?.stringValue else { throw WireError("\"model\" is required") }
        guard case .array(let rawMessages)? = root["messages"] else { throw WireError("\"messages\" must be an array") }
        var instructions: String?
        var messages: [ChatMessage] = []
        for m in rawMessages {
            guard let role = m["role"]?.stringValue else { throw WireError("every message needs a \"role\"") }
            let text: String
            switch m["content"] {
            case .string(let s)?: text = s
            case .array(let parts)?: text = parts.compactMap { $0["text"]?.stringValue }.joined()
            default: text = ""
            }
            if role == "system" || role == "developer" {
                instructions = (instructions.map { $0 + "\n" } ?? "") + text
                continue
            }
            var calls: [AssembledToolCall] = []
            if case .array(let rawCalls)? = m["tool_calls"] {
                for c in rawCalls {
                    calls.append(
                        AssembledToolCall(
                            id: c["id"]?.stringValue ?? "", name: c["function"]?["name"]?.stringValue ?? "",
                            arguments: c["function"]?["arguments"]?.stringValue ?? "{}"))
                }
            }
            guard let known = MessageRole(rawValue: role) else { throw WireError("unknown role \"\(role)\"") }
            messages.append(ChatMessage(role: known, text: text, toolCalls: calls, toolCallID: m["tool_call_id"]?.stringValue))
        }
        let schema =
            root["response_format"]?["json_schema"]?["schema"]
            ?? (root["response_format"]?["type"]?.stringValue == "json_object" ? .object(["type": .string("object")]) : nil)
        var tools: [ToolSpec] = []
        if case .array(let rawTools)? = root["tools"] {
            for t in rawTools {
                guard let name = t["function"]?["name"]?.stringValue else { throw WireError("every tool needs function.name") }
                tools.append(
                    ToolSpec(
                        name: name, description: t["function"]?["description"]?.stringValue,
                        parameters: t["function"]?["parameters"] ?? .object([:])))
            }
        }
        var temperature: Double?
        if case .number(let t)? = root["temperature"] { temperature = t }
        let chat = ChatRequest(
            model: model, instructions: instructions, messages: messages, attempt: 1, temperature: temperature,
            maxTokens: root["max_tokens"]?.intValue, responseSchema: schema, tools: tools)
        return ServerRequest(
            chat: chat, stream: root["stream"]?.boolValue ?? false,
            includeUsage: root["stream_options"]?["include_usage"]?.boolValue ?? false)
    }

    /// A bad request, as the message of a 400 answer.
    public struct WireError: Error, CustomStringConvertible {
        public var description: String
        init(_ message: String) { description = message }
    }

    /// One `chat.completion.chunk` (an SSE event's data).
    public static func chunkJSON(
        id: String, model: String, created: Int, role: Bool = false, content: String? = nil,
        toolCall: (index: Int, call: AssembledToolCall, first: Bool, arguments: String)? = nil,
        finishReason: String? = nil, usage: TokenUsage? = nil, noChoices: Bool = false
    ) -> String {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("id"); w.string(id)
        w.key("object"); w.string("chat.completion.chunk")
        w.key("created"); w.int(created)
        w.key("model"); w.string(model)
        w.key("choices"); w.beginArray()
        if !noChoices {
            w.beginObject()
            w.key("index"); w.int(0)
            w.key("delta"); w.beginObject()
            if role { w.key("role"); w.string("assistant") }
            if let content { w.key("content"); w.string(content) }
            if let t = toolCall {
                w.key("tool_calls"); w.beginArray(); w.beginObject()
                w.key("index"); w.int(t.index)
                if t.first { w.key("id"); w.string(t.call.id); w.key("type"); w.string("function") }
                w.key("function"); w.beginObject()
                if t.first { w.key("name"); w.string(t.call.name) }
                w.key("arguments"); w.string(t.arguments)
                w.endObject()
                w.endObject(); w.endArray()
            }
            w.endObject()
            w.key("logprobs"); w.null()
            w.key("finish_reason"); if let finishReason { w.string(finishReason) } else { w.null() }
            w.endObject()
        }
        w.endArray()
        if let usage { w.key("usage"); usage.write(to: &w) } else if noChoices { w.key("usage"); w.null() }
        w.endObject()
        return w.text
    }

    /// A whole `chat.completion`.
    public static func completionJSON(
        id: String, model: String, created: Int, text: String?, toolCalls: [AssembledToolCall],
        finishReason: String, usage: TokenUsage
    ) -> String {
        var w = JSONWriter(capacity: 256 + (text?.utf8.count ?? 0))
        w.beginObject()
        w.key("id"); w.string(id)
        w.key("object"); w.string("chat.completion")
        w.key("created"); w.int(created)
        w.key("model"); w.string(model)
        w.key("choices"); w.beginArray(); w.beginObject()
        w.key("index"); w.int(0)
        w.key("message"); w.beginObject()
        w.key("role"); w.string("assistant")
        w.key("content"); if let text { w.string(text) } else { w.null() }
        if !toolCalls.isEmpty {
            w.key("tool_calls"); w.beginArray()
            for c in toolCalls {
                w.beginObject()
                w.key("id"); w.string(c.id); w.key("type"); w.string("function")
                w.key("function"); w.beginObject(); w.key("name"); w.string(c.name); w.key("arguments"); w.string(c.arguments);
                w.endObject()
                w.endObject()
            }
            w.endArray()
        }
        w.endObject()
        w.key("logprobs"); w.null()
        w.key("finish_reason"); w.string(finishReason)
        w.endObject(); w.endArray()
        w.key("usage"); usage.write(to: &w)
        w.endObject()
        return w.text
    }

    /// An error body: `{"error": {"message", "type", "code"}}`.
    public static func errorJSON(message: String, type: String, code: String? = nil) -> String {
        var w = JSONWriter()
        w.beginObject()
        w.key("error"); w.beginObject()
        w.key("message"); w.string(message)
        w.key("type"); w.string(type)
        w.key("param"); w.null()
        w.key("code"); if let code { w.string(code) } else { w.null() }
        w.endObject()
        w.endObject()
        return w.text
    }

    /// An embeddings response for `vectors` (in input order).
    public static func embeddingsJSON(model: String, vectors: [[Float]], promptTokens: Int) -> String {
        var w = JSONWriter(capacity: 64 + vectors.reduce(0) { $0 + $1.count * 12 })
        w.beginObject()
        w.key("object"); w.string("list")
        w.key("data"); w.beginArray()
        for (i, v) in vectors.enumerated() {
            w.beginObject()
            w.key("object"); w.string("embedding")
            w.key("index"); w.int(i)
            w.key("embedding"); w.beginArray(); for x in v { w.double(Double(x)) }; w.endArray()
            w.endObject()
        }
        w.endArray()
        w.key("model"); w.string(model)
        w.key("usage"); w.beginObject()
        w.key("prompt_tokens"); w.int(promptTokens); w.key("total_tokens"); w.int(promptTokens)
        w.endObject()
        w.endObject()
        return w.text
    }
}
