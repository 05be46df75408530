/// A tool call the model made, complete.
public struct AssembledToolCall: Sendable, Hashable {
    public var id: String
    public var name: String
    /// The arguments as the model wrote them (JSON text; validated later against the tool's schema).
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// Assembles the tool calls of an OpenAI-style stream: `choices[0].delta.tool_calls` fragments keyed
/// by `index`, where the first fragment of a call carries its `id` and `function.name` and later ones
/// append to `function.arguments`. Pure; the provider feeds it each chunk's fragments.
public struct ToolCallAssembler: Sendable {
    private struct Partial: Sendable {
        var id: String?
        var name: String?
        var arguments = ""
    }

    private var partials: [Int: Partial] = [:]
    /// Why the calls are refused: more than `Limits.toolCallsPerStep` of them, or one's arguments
    /// (or id or name) over `Limits.toolArgumentsBytes` (README: Limits). Fragments after it are dropped.
    public private(set) var overflow: String?

    public init() {}

    /// Adds one fragment. Every field but `index` may be missing.
    public mutating func add(index: Int, id: String?, name: String?, argumentsFragment: String?) {
        guard overflow == nil else { return }
        guard partials[index] != nil || partials.count < Limits.toolCallsPerStep else {
            overflow = "the model asked for more than \(Limits.toolCallsPerStep) tool calls in one step"
            return
        }
        var p = partials[index] ?? Partial()
        if let id, !id.isEmpty { p.id = id }
        if let name, !name.isEmpty { p.name = (p.name ?? "") + name }
        if let argumentsFragment { p.arguments += argumentsFragment }
        let size = p.arguments.utf8.count + (p.name?.utf8.count ?? 0) + (p.id?.utf8.count ?? 0)
        guard size <= Limits.toolArgumentsBytes else {
            overflow = "the model's tool call \(index) (\(p.name ?? "no name")) has arguments over \(Limits.toolArgumentsBytes) bytes"
            return
        }
        partials[index] = p
    }

    /// True once any fragment arrived.
    public var isEmpty: Bool { partials.isEmpty }

    /// The calls in index order. A call without an id gets `call_<index>`; a call without a name is an
    /// error the caller reports (the model sent something malformed).
    public func calls() throws -> [AssembledToolCall] {
        if let overflow { throw GenerationError(.permanent, overflow) }
        return try partials.keys.sorted().map { index in
            let p = partials[index]!
            guard let name = p.name else {
                throw GenerationError(.transient, "the model streamed tool call \(index) without a function name")
            }
            return AssembledToolCall(id: p.id ?? "call_\(index)", name: name, arguments: p.arguments.isEmpty ? "{}" : p.arguments)
        }
    }
}
