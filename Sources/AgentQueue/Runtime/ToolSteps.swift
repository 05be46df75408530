import Foundation
import Logging
import Synchronization

/// Where tool steps are saved and how HTTP and Swift tools are called.
public struct Toolbox: Sendable {
    public var store: ToolStore
    public var caller: ToolCaller

    public init(store: ToolStore, caller: ToolCaller) {
        self.store = store
        self.caller = caller
    }
}

/// The tools of one claimed job: its tool set resolved, names that resolved to nothing, and the calls
/// an earlier attempt left open.
public struct JobTools: Sendable {
    public var definitions: [String: ToolDefinition]
    public var missing: [String]
    public var open: [OpenToolCall]

    public init(definitions: [String: ToolDefinition] = [:], missing: [String] = [], open: [OpenToolCall] = []) {
        self.definitions = definitions
        self.missing = missing
        self.open = open
    }
}

/// The stream a generation currently writes to: each tool step finishes one and opens the next.
final class LiveTarget: Sendable {
    let streams: LiveStreams
    private let current: Mutex<LiveStreams.Handle?>

    init(streams: LiveStreams, handle: LiveStreams.Handle) {
        self.streams = streams
        current = Mutex(handle)
    }

    var handle: LiveStreams.Handle? {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// The tool steps of one generation: saving a step that called tools (the calls, the SQL tools'
/// writes and results in one transaction; HTTP and Swift tools after it), parking the job when a
/// call waits for the application, and resuming the calls an earlier attempt left open.
struct ToolSteps {
    let runner: JobRunner
    let job: ClaimedJob
    let agent: AgentRecord
    let settings: GenerationSettings
    let tools: JobTools
    let stream: LiveTarget?
    let logger: Logger

    /// A saved step: the messages to add to the conversation, or the parked outcome.
    struct Saved {
        var messages: [ChatMessage]
        var parked: FinishItem?
    }

    /// The tools offered to the model, in the tool set's order. None without a toolbox, for
    /// structured output, or when nothing is saved (a step lives in saved messages).
    var offered: [ToolSpec] {
        guard runner.toolbox != nil, settings.schema == nil, settings.saveMessages != "none" else { return [] }
        return settings.toolNames.compactMap { tools.definitions[$0]?.spec }
    }

    /// Model steps already taken for this prompt (assistant messages with calls after the prompt).
    static func stepsTaken(in messages: [ChatMessage]) -> Int {
        let prompt = messages.lastIndex { $0.role == "user" } ?? -1
        return messages[(prompt + 1)...].filter { $0.role == "assistant" && !$0.toolCalls.isEmpty }.count
    }

    /// The outcome again when an earlier attempt's calls still wait for answers.
    func parkedAgain() -> FinishItem? {
        let waiting = tools.open.filter(\.waits)
        guard !waiting.isEmpty else { return nil }
        return parked(waiting.map { ($0.id, $0.name, $0.arguments, $0.status == "awaiting_client" ? "client" : "approval") },
                      text: "")
    }

    /// Runs the calls an earlier attempt left open (approved calls, HTTP/Swift calls a crash cut
    /// off) and returns their results as context rows.
    func resume(promptOrd: Int?) async throws -> [ContextMessage] {
        let runnable = tools.open.filter { !$0.waits }
        guard !runnable.isEmpty, let toolbox = runner.toolbox else { return [] }
        var step = ToolStore.Step(jobID: job.id, attempt: job.attempt)
        var after: [(id: String, tool: ToolDefinition, arguments: JSONValue)] = []
        for call in runnable {
            guard let tool = tools.definitions[call.name] else {
                step.results[call.id] = ToolResult(value: ToolStepPlan.errorResult("tool \"\(call.name)\" is no longer available"),
                                                   isError: true)
                continue
            }
            if case .sql = tool.kind {
                step.runSQL.append((call.id, tool.timeout))
                step.leaseExtension += tool.timeout
            } else {
                after.append((call.id, tool, call.arguments))
            }
        }
        var results = step.results
        results.merge(try await toolbox.store.saveStep(step, logger: logger)) { $1 }
        if !after.isEmpty {
            var record = ToolStore.Step(jobID: job.id, attempt: job.attempt)
            record.results = await runAfterCommit(after, messageID: nil)
            _ = try await toolbox.store.saveStep(record, logger: logger)
            results.merge(record.results) { $1 }
        }
        logger.debug("resumed tool calls", metadata: ["calls": "\(results.count)"])
        return runnable.compactMap { call in
            results[call.id].map { result in
                let part = JSONValue.object(["type": .string("tool-result"), "tool_call_id": .string(call.id),
                                             "tool_name": .string(call.name), "result": result.value,
                                             "is_error": .bool(result.isError)])
                return ContextMessage(id: UUID(), role: "tool", contentJSON: JSONValue.array([part]).jsonString, text: nil,
                                      ord: promptOrd ?? 0, step: Int(Int32.max), tool: true)
            }
        }
    }

    /// Saves a step whose reply called tools, runs them, and opens the stream of the next step.
    func save(_ reply: ChatReply, usage: TokenUsage?) async throws -> Saved {
        guard let toolbox = runner.toolbox else { throw GenerationError(.permanent, "tools are not available on this worker") }
        let plan = ToolStepPlan(reply.toolCalls, tools: tools.definitions)
        let handle = stream?.handle
        var message = NewMessage(id: handle?.messageID ?? UUID(), text: reply.text, model: settings.model,
                                 provider: settings.provider, usage: usage, finishReason: reply.finishReason, agentName: agent.name)
        var parts: [JSONValue] = reply.text.isEmpty ? [] : [.object(["type": .string("text"), "text": .string(reply.text)])]
        for call in plan.calls {
            parts.append(.object(["type": .string("tool-call"), "tool_call_id": .string(call.id),
                                  "tool_name": .string(call.name), "args": call.arguments]))
        }
        message.content = .array(parts)
        message.tool = true

        var step = ToolStore.Step(jobID: job.id, attempt: job.attempt)
        step.message = message
        if let stream, let handle, let last = await stream.streams.finish(handle.streamID) {
            step.streamEnd = FinishItem.StreamEnd(streamID: handle.streamID, seq: last.seq, delta: last.text)
        }
        stream?.handle = nil
        var results: [String: ToolResult] = [:]
        step.calls = plan.calls.map { call in
            if case .rejected(let why) = call.disposition {
                let result = ToolResult(value: ToolStepPlan.errorResult(why), isError: true)
                results[call.id] = result
                return (call, result)
            }
            return (call, nil)
        }
        for call in plan.calls where call.disposition == .runInTransaction {
            step.runSQL.append((call.id, call.tool!.timeout))
            step.leaseExtension += call.tool!.timeout
        }
        let after = plan.calls.filter { $0.disposition == .runAfterCommit }
        let next = stream != nil && !plan.parks
            ? StreamStore.Opening(jobID: job.id, attempt: job.attempt, model: settings.model, provider: settings.provider) : nil
        step.openNext = after.isEmpty ? next : nil
        results.merge(try await toolbox.store.saveStep(step, logger: logger)) { $1 }
        if !after.isEmpty {
            var record = ToolStore.Step(jobID: job.id, attempt: job.attempt)
            record.results = await runAfterCommit(after.map { ($0.id, $0.tool!, $0.arguments) }, messageID: message.id)
            record.openNext = next
            _ = try await toolbox.store.saveStep(record, logger: logger)
            results.merge(record.results) { $1 }
        }
        if let stream, let next {
            let opened = LiveStreams.Handle(streamID: next.streamID, messageID: next.messageID, jobID: job.id, attempt: job.attempt)
            stream.streams.open(opened)
            stream.handle = opened
        }
        if plan.parks {
            let waiting = plan.calls.filter { $0.disposition == .awaitClient || $0.disposition == .awaitApproval }
            return Saved(messages: [], parked: parked(waiting.map { ($0.id, $0.name, $0.arguments,
                                                                    $0.disposition == .awaitClient ? "client" : "approval") },
                                                      text: reply.text))
        }
        var messages = [ChatMessage(role: "assistant", text: reply.text, toolCalls: plan.calls.map {
            AssembledToolCall(id: $0.id, name: $0.name, arguments: $0.arguments.jsonString)
        })]
        for call in plan.calls {
            let result = results[call.id] ?? ToolResult(value: ToolStepPlan.errorResult("no result"), isError: true)
            messages.append(ChatMessage(role: "tool", text: result.text, toolCallID: call.id))
        }
        return Saved(messages: messages, parked: nil)
    }

    /// HTTP and Swift calls, run concurrently; each fault is its error result.
    private func runAfterCommit(_ calls: [(id: String, tool: ToolDefinition, arguments: JSONValue)],
                                messageID: UUID?) async -> [String: ToolResult] {
        guard let caller = runner.toolbox?.caller else { return [:] }
        return await withTaskGroup(of: (String, ToolResult).self) { group in
            for call in calls {
                let context = ToolContext(userID: job.userID, threadID: job.threadID, messageID: messageID, jobID: job.id,
                                          agentName: agent.name, toolCallID: call.id)
                group.addTask { (call.id, await caller.run(call.tool, arguments: call.arguments, context: context)) }
            }
            var results: [String: ToolResult] = [:]
            for await (id, result) in group { results[id] = result }
            return results
        }
    }

    /// The outcome of a job that waits for client outputs or approvals.
    private func parked(_ waiting: [(id: String, name: String, arguments: JSONValue, kind: String)], text: String) -> FinishItem {
        let pending = JSONValue.array(waiting.map {
            .object(["tool_call_id": .string($0.id), "tool_name": .string($0.name), "args": $0.arguments, "kind": .string($0.kind)])
        })
        return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .requiresAction,
                          result: JobResultPayload(text: text.isEmpty ? nil : text, messageIDs: [], usage: nil,
                                                   pendingToolCalls: pending))
    }
}
