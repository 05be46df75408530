/// The kind of a job (`agentq.jobs.kind`), decoded where a claimed row is read. A kind this worker
/// does not run stays `.unknown` and ends `failed` with a clear error.
public enum JobKind: Sendable, Hashable, CustomStringConvertible {
    /// A model generation in a thread (`agentq.generate`, `agentq.generate_object`).
    case generate
    /// Embeddings of saved messages, enqueued by the message triggers.
    case embed
    case unknown(String)

    public init(rawValue: String) {
        switch rawValue {
        case "generate": self = .generate
        case "embed": self = .embed
        default: self = .unknown(rawValue)
        }
    }

    /// The name stored in `agentq.jobs.kind`.
    public var rawValue: String {
        switch self {
        case .generate: "generate"
        case .embed: "embed"
        case .unknown(let name): name
        }
    }

    public var description: String { rawValue }
}
