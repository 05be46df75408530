/// Who speaks in a message (`agentq.messages.role`, and `role` on the OpenAI wire).
public enum MessageRole: String, Sendable, Hashable, Codable {
    case system, user, assistant, tool
}
