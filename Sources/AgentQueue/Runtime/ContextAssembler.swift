/// Builds the messages a generation sends, as the Convex Agent does: the recent successful messages
/// before the prompt's turn, then the prompt, then the replies already saved for it. A window that
/// was cut by the limit starts at a whole turn (its oldest, partial turn is left out). Pure logic.
public struct ContextAssembler: Sendable {
    /// How many recent messages were asked for (the window is full when this many came back).
    public var limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    /// `messages` are oldest first and end at the prompt's turn; `promptText` stands in for a prompt
    /// that was not saved (storage `none`).
    public func assemble(messages: [ContextMessage], promptOrd: Int?, promptStep: Int?, promptText: String?) -> [ChatMessage] {
        var window = messages
        if window.count >= limit, let oldest = window.first?.ord, oldest != promptOrd {
            window.removeAll { $0.ord == oldest }
        }
        var recent: [ChatMessage] = []
        var prompt: [ChatMessage] = []
        var responses: [ChatMessage] = []
        for m in window {
            let chat = ChatMessage(role: m.role, text: m.text ?? "")
            if let promptOrd, m.ord == promptOrd {
                if let promptStep, m.step == promptStep { prompt.append(chat) }
                else if let promptStep, m.step > promptStep { responses.append(chat) }
                else { recent.append(chat) }
            } else {
                recent.append(chat)
            }
        }
        if promptOrd == nil, let promptText {
            prompt = [ChatMessage(role: "user", text: promptText)]
        }
        return recent + prompt + responses
    }
}
