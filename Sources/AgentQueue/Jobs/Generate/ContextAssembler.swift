/// Builds the messages a generation sends, as the Convex Agent does: search hits with their
/// neighbours (found by `agentq.context_search`), the recent successful messages before the
/// prompt's turn, then the prompt, then the replies already saved for it. A window that was cut by
/// the limit starts at a whole turn (its oldest, partial turn is left out). Tool calls and
/// results stay paired: each result follows the assistant message holding its call, and a call
/// without its result (or a result without its call) is left out, so no provider sees an orphan.
/// Pure logic.
public struct ContextAssembler: Sendable {
    /// How many recent messages were asked for (the window is full when this many came back).
    public var limit: Int
    /// `exclude_tool_messages`: tool calls and results are left out (an assistant's text stays).
    public var excludeTools: Bool

    public init(limit: Int, excludeTools: Bool = false) {
        self.limit = limit
        self.excludeTools = excludeTools
    }

    /// The recent window of `messages` (oldest first, ending at the prompt's turn): a full window
    /// loses its oldest turn unless that is the prompt's, so it starts at a whole turn.
    public func window(_ messages: [ContextMessage], promptOrd: Int?) -> [ContextMessage] {
        var window = messages
        if window.count >= limit, let oldest = window.first?.ord, oldest != promptOrd {
            window.removeAll { $0.ord == oldest }
        }
        return window
    }

    /// `messages` are oldest first and end at the prompt's turn; `search` (oldest first) comes before
    /// them; `promptText` stands in for a prompt that was not saved (storage `none`).
    public func assemble(
        messages: [ContextMessage], search: [ContextMessage] = [], promptOrd: Int?, promptStep: Int?,
        promptText: String?
    ) -> [ChatMessage] {
        let window = window(messages, promptOrd: promptOrd)
        var recent: [ContextMessage] = []
        var prompt: [ContextMessage] = []
        var responses: [ContextMessage] = []
        for m in window {
            if let promptOrd, m.ord == promptOrd {
                if let promptStep, m.step == promptStep {
                    prompt.append(m)
                } else if let promptStep, m.step > promptStep {
                    responses.append(m)
                } else {
                    recent.append(m)
                }
            } else {
                recent.append(m)
            }
        }
        let promptMessages = promptOrd == nil ? promptText.map { [ChatMessage(role: .user, text: $0)] } ?? [] : paired(prompt)
        return paired(search) + paired(recent) + promptMessages + paired(responses)
    }

    /// Converts rows to chat messages, placing each tool result right after its call (matched within
    /// the same ord, since call ids need only be unique per generation) and dropping orphans.
    func paired(_ rows: [ContextMessage]) -> [ChatMessage] {
        var results: [String: ChatMessage] = [:]
        for row in rows where row.role == .tool {
            if let result = Self.toolResult(row) { results["\(row.ord)|\(result.toolCallID ?? "")"] = result }
        }
        var out: [ChatMessage] = []
        for row in rows where row.role != .tool {
            guard row.tool, row.role == .assistant else {
                out.append(ChatMessage(role: row.role, text: row.text ?? ""))
                continue
            }
            var message = Self.assistantWithCalls(row)
            message.toolCalls = excludeTools ? [] : message.toolCalls.filter { results["\(row.ord)|\($0.id)"] != nil }
            if message.toolCalls.isEmpty && message.text.isEmpty { continue }
            out.append(message)
            for call in message.toolCalls {
                if let result = results.removeValue(forKey: "\(row.ord)|\(call.id)") { out.append(result) }
            }
        }
        return out
    }

    /// An assistant row's text and tool-call parts.
    static func assistantWithCalls(_ row: ContextMessage) -> ChatMessage {
        var calls: [AssembledToolCall] = []
        if case .array(let parts)? = try? JSONValue.parse(row.contentJSON) {
            for part in parts where part["type"]?.stringValue == "tool-call" {
                guard let id = part["tool_call_id"]?.stringValue, let name = part["tool_name"]?.stringValue else { continue }
                calls.append(AssembledToolCall(id: id, name: name, arguments: (part["args"] ?? .object([:])).jsonString))
            }
        }
        return ChatMessage(role: .assistant, text: row.text ?? "", toolCalls: calls)
    }

    /// A tool row's result, as the model reads it.
    static func toolResult(_ row: ContextMessage) -> ChatMessage? {
        guard case .array(let parts)? = try? JSONValue.parse(row.contentJSON),
            let part = parts.first(where: { $0["type"]?.stringValue == "tool-result" }),
            let id = part["tool_call_id"]?.stringValue
        else { return nil }
        let result = ToolResult(value: part["result"] ?? .null, isError: part["is_error"]?.boolValue ?? false)
        return ChatMessage(role: .tool, text: result.text, toolCallID: id)
    }
}
