import Foundation

/// What a tool call knows about where it runs (the `ctx` of README: Tools).
public struct ToolContext: Sendable, Hashable {
    public var userID: String?
    public var threadID: UUID?
    /// The assistant message that holds the call.
    public var messageID: UUID?
    public var jobID: Int64
    public var agentName: String?
    public var toolCallID: String

    /// The context as the JSON object SQL and HTTP tools receive.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["job_id": .number(Double(jobID)), "tool_call_id": .string(toolCallID)]
        o["user_id"] = userID.map(JSONValue.string) ?? .null
        o["thread_id"] = threadID.map { .string($0.uuidString.lowercased()) } ?? .null
        o["message_id"] = messageID.map { .string($0.uuidString.lowercased()) } ?? .null
        o["agent_name"] = agentName.map(JSONValue.string) ?? .null
        return .object(o)
    }
}

/// A tool written in Swift and registered in code: `WorkerService(..., tools: [weather])` runs it
/// for any agent, thread or job whose tool set names it. Arguments arrive checked against
/// `parameters` and decoded into `Arguments`; the output is encoded to JSON for the model.
public struct SwiftTool: Sendable {
    public var name: String
    public var description: String
    /// The JSON Schema of the arguments (`"type": "object"`).
    public var parameters: JSONValue
    /// Whether a person must approve each call first (the job waits in `requires_action`).
    public var needsApproval: Bool
    /// The longest a call may run before it becomes an error result.
    public var timeout: Duration
    let handler: @Sendable (JSONValue, ToolContext) async throws -> JSONValue

    public init<Arguments: Decodable & SendableMetatype, Output: Encodable & SendableMetatype>(
        name: String, description: String, parameters: JSONValue, needsApproval: Bool = false,
        timeout: Duration = .seconds(30), arguments: Arguments.Type = Arguments.self,
        _ body: @escaping @Sendable (Arguments, ToolContext) async throws -> Output
    ) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.needsApproval = needsApproval
        self.timeout = timeout
        handler = { args, context in
            let decoded: Arguments = try JSONDecoder().decode(Arguments.self, from: Data(args.jsonString.utf8))
            let output = try await body(decoded, context)
            return try JSONValue.parse(String(decoding: try JSONEncoder().encode(output), as: UTF8.self))
        }
    }
}
