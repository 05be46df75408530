/// A tool a generation may call, resolved from `agentq.tools` or registered in Swift.
public struct ToolDefinition: Sendable {
    public enum Kind: Sendable {
        /// `target(args jsonb, ctx jsonb) returns jsonb`, run inside the step's transaction.
        case sql
        /// POST `{"args", "ctx"}` to the URL.
        case http(url: String)
        /// Answered by the application through `submit_tool_outputs`.
        case client
        /// Registered in code on this worker.
        case swift(SwiftTool)
    }

    public var name: String
    public var description: String
    public var parameters: JSONValue
    public var kind: Kind
    public var needsApproval: Bool
    public var timeout: Duration
    /// HTTP tools: the largest response body read.
    public var maxResponseBytes: Int

    public init(
        name: String, description: String, parameters: JSONValue, kind: Kind, needsApproval: Bool = false,
        timeout: Duration = .seconds(10), maxResponseBytes: Int = 1 << 20
    ) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.kind = kind
        self.needsApproval = needsApproval
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }

    /// From a Swift tool.
    public init(_ tool: SwiftTool) {
        self.init(
            name: tool.name, description: tool.description, parameters: tool.parameters, kind: .swift(tool),
            needsApproval: tool.needsApproval, timeout: tool.timeout)
    }

    /// The kind as stored in `agentq.tool_calls.kind`.
    public var kindName: String {
        switch kind {
        case .sql: "sql"
        case .http: "http"
        case .client: "client"
        case .swift: "swift"
        }
    }

    /// The tool as the model sees it.
    public var spec: ToolSpec { ToolSpec(name: name, description: description, parameters: parameters) }
}
