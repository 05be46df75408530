import Foundation
import Logging

/// Runs the tool steps of one generation: a step whose reply called tools is planned
/// (`ToolStepPlan`), saved with its SQL tools run inside the step's transaction (each in a savepoint
/// under its own timeout, so the calls, the tools' writes and the results commit together), then its
/// HTTP and Swift tools run after the commit and their results are saved. Calls that wait for the
/// application park the job; the calls an earlier attempt left open are resumed first.
struct ToolExecutor {
    let toolbox: Toolbox
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

    /// A call that runs after the step's transaction.
    private typealias LaterCall = (id: String, tool: ToolDefinition, arguments: JSONValue)

    /// The tools offered to the model, in the tool set's order. None for structured output, or when
    /// nothing is saved (a step lives in saved messages).
    var offered: [ToolSpec] {
        guard settings.schema == nil, settings.saveMessages != .none else { return [] }
        return settings.toolNames.compactMap { tools.definitions[$0]?.spec }
    }

    /// Model steps already taken for this prompt (assistant messages with calls after the prompt).
    static func stepsTaken(in messages: [ChatMessage]) -> Int {
        let prompt = messages.lastIndex { $0.role == .user } ?? -1
        return messages[(prompt + 1)...].filter { $0.role == .assistant && !$0.toolCalls.isEmpty }.count
    }

    /// The outcome again when an earlier attempt's calls still wait for answers.
    func parkedAgain() -> FinishItem? {
        let waiting = tools.open.filter(\.waits)
        guard !waiting.isEmpty else { return nil }
        return parked(waiting.map { ($0.id, $0.name, $0.arguments, $0.status.pendingKind) }, text: "")
    }

    /// Runs the calls an earlier attempt left open (approved calls, HTTP/Swift calls a crash cut
    /// off) and returns their results as context rows. A stored call is checked again as a new one
    /// is (`ToolStepPlan`): a tool outside the job's own tool set, or arguments its schema refuses,
    /// give an error result and run nothing.
    func resume(promptOrd: Int?) async throws -> [ContextMessage] {
        let runnable = tools.open.filter { !$0.waits }
        guard !runnable.isEmpty else { return [] }
        var step = ToolStore.Step(jobID: job.id, attempt: job.attempt)
        var inTransaction: [(id: String, timeout: Duration)] = []
        var later: [LaterCall] = []
        for call in runnable {
            guard let tool = tools.definitions[call.name] else {
                step.results[call.id] = ToolResult(
                    value: ToolStepPlan.errorResult("tool \"\(call.name)\" is not one of this job's tools (or is no longer available)"),
                    isError: true)
                continue
            }
            let problems = JSONSchemaValidator(schema: tool.parameters).problems(in: call.arguments)
            if !problems.isEmpty {
                step.results[call.id] = ToolResult(
                    value: ToolStepPlan.errorResult("invalid arguments: " + problems.prefix(5).joined(separator: "; ")),
                    isError: true)
                continue
            }
            if case .sql = tool.kind {
                inTransaction.append((call.id, tool.timeout))
                step.leaseExtension += tool.timeout
            } else {
                later.append((call.id, tool, call.arguments))
            }
        }
        var results = step.results
        results.merge(try await commit(step, runningSQL: inTransaction, openingNext: nil)) { $1 }
        results.merge(try await runAfterCommit(later, messageID: nil, openingNext: nil)) { $1 }
        logger.debug("resumed tool calls", metadata: ["calls": "\(results.count)"])
        return runnable.compactMap { call in
            results[call.id].map { result in
                let part = JSONValue.object([
                    "type": .string("tool-result"), "tool_call_id": .string(call.id),
                    "tool_name": .string(call.name), "result": result.value,
                    "is_error": .bool(result.isError)
                ])
                return ContextMessage(
                    id: UUID(), role: .tool, contentJSON: JSONValue.array([part]).jsonString, text: nil,
                    ord: promptOrd ?? 0, step: Int(Int32.max), tool: true)
            }
        }
    }

    /// Saves a step whose reply called tools, runs them, and opens the stream of the next step.
    func save(_ reply: ChatReply, usage: TokenUsage?) async throws -> Saved {
        let plan = ToolStepPlan(reply.toolCalls, tools: tools.definitions)
        var step = ToolStore.Step(jobID: job.id, attempt: job.attempt)
        step.message = stepMessage(reply, plan: plan, usage: usage)
        if let stream, let handle = stream.handle, let last = await stream.streams.finish(handle.streamID) {
            step.streamEnd = FinishItem.StreamEnd(streamID: handle.streamID, seq: last.seq, delta: last.text)
        }
        stream?.handle = nil
        var results: [String: ToolResult] = [:]
        var inTransaction: [(id: String, timeout: Duration)] = []
        var later: [LaterCall] = []
        for call in plan.calls {
            switch call.disposition {
            case .rejected(let why):
                results[call.id] = ToolResult(value: ToolStepPlan.errorResult(why), isError: true)
            case .runInTransaction:
                inTransaction.append((call.id, call.tool!.timeout))
                step.leaseExtension += call.tool!.timeout
            case .runAfterCommit:
                later.append((call.id, call.tool!, call.arguments))
            case .awaitClient, .awaitApproval:
                break
            }
        }
        step.calls = plan.calls.map { ($0, results[$0.id]) }
        let next =
            stream != nil && !plan.parks
            ? StreamStore.Opening(jobID: job.id, attempt: job.attempt, model: settings.model, provider: settings.provider) : nil
        results.merge(try await commit(step, runningSQL: inTransaction, openingNext: later.isEmpty ? next : nil)) { $1 }
        results.merge(try await runAfterCommit(later, messageID: step.message?.id, openingNext: next)) { $1 }
        if let stream, let next {
            let opened = LiveStreams.Handle(streamID: next.streamID, messageID: next.messageID, jobID: job.id, attempt: job.attempt)
            stream.streams.open(opened)
            stream.handle = opened
        }
        if plan.parks {
            let waiting = plan.calls.filter { $0.status.waits }
            return Saved(
                messages: [],
                parked: parked(
                    waiting.map { ($0.id, $0.name, $0.arguments, $0.status.pendingKind) },
                    text: reply.text))
        }
        var messages = [
            ChatMessage(
                role: .assistant, text: reply.text,
                toolCalls: plan.calls.map {
                    AssembledToolCall(id: $0.id, name: $0.name, arguments: $0.arguments.jsonString)
                })
        ]
        for call in plan.calls {
            let result = results[call.id] ?? ToolResult(value: ToolStepPlan.errorResult("no result"), isError: true)
            messages.append(ChatMessage(role: .tool, text: result.text, toolCallID: call.id))
        }
        return Saved(messages: messages, parked: nil)
    }

    /// The step's assistant message: its text and its calls as content parts.
    private func stepMessage(_ reply: ChatReply, plan: ToolStepPlan, usage: TokenUsage?) -> NewMessage {
        var message = NewMessage(
            id: stream?.handle?.messageID ?? UUID(), text: reply.text, model: settings.model,
            provider: settings.provider, usage: usage, finishReason: reply.finishReason, agentName: agent.name)
        var parts: [JSONValue] = reply.text.isEmpty ? [] : [.object(["type": .string("text"), "text": .string(reply.text)])]
        for call in plan.calls {
            parts.append(
                .object([
                    "type": .string("tool-call"), "tool_call_id": .string(call.id),
                    "tool_name": .string(call.name), "args": call.arguments
                ]))
        }
        message.content = .array(parts)
        message.tool = true
        return message
    }

    /// The step's transaction: the step, then each SQL tool (a failure is its error result, saved in
    /// the same transaction), then the next stream. Returns the SQL tools' results.
    private func commit(
        _ step: ToolStore.Step, runningSQL calls: [(id: String, timeout: Duration)],
        openingNext next: StreamStore.Opening?
    ) async throws -> [String: ToolResult] {
        let toolTime = calls.map(\.timeout).reduce(Duration.zero, +)
        return try await toolbox.store.inStep(
            step, firstSQLToolTimeout: calls.first?.timeout, extraTime: toolTime, logger: logger
        ) { transaction in
            var results: [String: ToolResult] = [:]
            for (index, (callID, _)) in calls.enumerated() {
                let nextTimeout = index + 1 < calls.count ? calls[index + 1].timeout : nil
                do {
                    let value = try await transaction.runSQLTool(jobID: job.id, callID: callID, thenTimeout: nextTimeout)
                    results[callID] = ToolResult(value: value, isError: false)
                } catch let failure as ToolStore.StepTransaction.ToolFailed {
                    let result = ToolResult(value: ToolStepPlan.errorResult(describeDatabaseError(failure.underlying)), isError: true)
                    results[callID] = result
                    try await transaction.recordResults(jobID: job.id, [callID: result], thenTimeout: nextTimeout)
                }
            }
            if let next { try await transaction.openStream(next) }
            return results
        }
    }

    /// HTTP and Swift calls, run concurrently after the step committed (each fault is its error
    /// result), then their results saved with the next stream opened.
    private func runAfterCommit(
        _ calls: [LaterCall], messageID: UUID?,
        openingNext next: StreamStore.Opening?
    ) async throws -> [String: ToolResult] {
        guard !calls.isEmpty else { return [:] }
        let caller = toolbox.caller
        let results = await withTaskGroup(of: (String, ToolResult).self) { group in
            for call in calls {
                let context = ToolContext(
                    userID: job.userID, threadID: job.threadID, messageID: messageID, jobID: job.id,
                    agentName: agent.name, toolCallID: call.id)
                group.addTask { (call.id, await caller.run(call.tool, arguments: call.arguments, context: context)) }
            }
            var results: [String: ToolResult] = [:]
            for await (id, result) in group { results[id] = result }
            return results
        }
        var record = ToolStore.Step(jobID: job.id, attempt: job.attempt)
        record.results = results
        _ = try await commit(record, runningSQL: [], openingNext: next)
        return results
    }

    /// The outcome of a job that waits for client outputs or approvals.
    private func parked(_ waiting: [(id: String, name: String, arguments: JSONValue, kind: String)], text: String) -> FinishItem {
        let pending = JSONValue.array(
            waiting.map {
                .object(["tool_call_id": .string($0.id), "tool_name": .string($0.name), "args": $0.arguments, "kind": .string($0.kind)])
            })
        return FinishItem(
            jobID: job.id, attempt: job.attempt, outcome: .requiresAction,
            result: JobResultPayload(
                text: text.isEmpty ? nil : text, messageIDs: [], usage: nil,
                pendingToolCalls: pending))
    }
}
