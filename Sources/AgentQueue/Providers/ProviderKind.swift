/// What speaks for a row of `agentq.providers` (`kind`).
public enum ProviderKind: String, Sendable, Hashable {
    /// An OpenAI-compatible HTTP endpoint (`base_url`, key from `api_key_env`).
    case openai
    /// The in-process mock model.
    case mock
}
