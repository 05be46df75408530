/// Where a tool call stands (`agentq.tool_calls.status`).
public enum ToolCallStatus: String, Sendable, Hashable {
    /// Saved, its tool running or about to (a crash leaves it so; the next attempt runs it again).
    case running
    /// A call that needed approval and got it: it runs when the job resumes.
    case approved
    /// Its result is saved.
    case done
    /// A client tool: the application answers with `agentq.submit_tool_outputs`.
    case awaitingClient = "awaiting_client"
    /// Waits for `agentq.approve_tool_call`.
    case awaitingApproval = "awaiting_approval"

    /// Whether the call waits for the application.
    public var waits: Bool { self == .awaitingClient || self == .awaitingApproval }

    /// How a pending call is named in a parked job's result (`kind`).
    var pendingKind: String { self == .awaitingClient ? "client" : "approval" }
}
