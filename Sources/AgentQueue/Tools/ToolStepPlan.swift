/// What to do with each tool call of one model step (pure: no IO). Calls to unknown tools and calls
/// whose arguments do not parse or do not match the tool's schema get an error result at once, so the
/// model can repair them; client tools and tools that need approval wait; the others run.
public struct ToolStepPlan: Sendable {
    public enum Disposition: Sendable, Equatable {
        /// An error result, decided without running anything.
        case rejected(String)
        /// A SQL tool, run inside the step's transaction.
        case runInTransaction
        /// An HTTP or Swift tool, run after the step's transaction commits.
        case runAfterCommit
        case awaitClient
        case awaitApproval
    }

    public struct Call: Sendable {
        public var id: String
        public var name: String
        /// The arguments as parsed (an empty object when they did not parse).
        public var arguments: JSONValue
        public var tool: ToolDefinition?
        public var disposition: Disposition

        /// The kind stored for the call (`invalid` for a call to no known tool).
        public var kindName: String { tool?.kindName ?? "invalid" }

        /// The status its `agentq.tool_calls` row starts with.
        public var status: ToolCallStatus {
            switch disposition {
            case .rejected: .done
            case .runInTransaction, .runAfterCommit: .running
            case .awaitClient: .awaitingClient
            case .awaitApproval: .awaitingApproval
            }
        }
    }

    public var calls: [Call]

    public init(_ requested: [AssembledToolCall], tools: [String: ToolDefinition]) {
        calls = requested.map { call in
            let parsed = try? JSONValue.parse(call.arguments.isEmpty ? "{}" : call.arguments)
            guard let tool = tools[call.name] else {
                let known = tools.keys.sorted().joined(separator: ", ")
                return Call(
                    id: call.id, name: call.name, arguments: parsed ?? .object([:]), tool: nil,
                    disposition: .rejected("unknown tool \"\(call.name)\" (tools: \(known))"))
            }
            guard let arguments = parsed else {
                let why =
                    (try? JSONValue.checkDepth(call.arguments)) == nil
                    ? "the arguments are nested more than \(Limits.jsonDepth) levels deep" : "the arguments are not JSON"
                return Call(
                    id: call.id, name: call.name, arguments: .object([:]), tool: tool,
                    disposition: .rejected("\(why): \(call.arguments.prefix(200))"))
            }
            let problems = JSONSchemaValidator(schema: tool.parameters).problems(in: arguments)
            if !problems.isEmpty {
                return Call(
                    id: call.id, name: call.name, arguments: arguments, tool: tool,
                    disposition: .rejected("invalid arguments: " + problems.prefix(5).joined(separator: "; ")))
            }
            let disposition: Disposition
            switch tool.kind {
            case _ where tool.needsApproval: disposition = .awaitApproval
            case .client: disposition = .awaitClient
            case .sql: disposition = .runInTransaction
            case .http, .swift: disposition = .runAfterCommit
            }
            return Call(id: call.id, name: call.name, arguments: arguments, tool: tool, disposition: disposition)
        }
    }

    /// Whether the job must wait for answers after this step.
    public var parks: Bool { calls.contains { $0.disposition == .awaitClient || $0.disposition == .awaitApproval } }

    /// The error result of a rejected call: `{"error": "..."}`.
    public static func errorResult(_ message: String) -> JSONValue { .object(["error": .string(message)]) }
}
