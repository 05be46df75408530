/// The built-in `mock` provider: the scripted model of `MockScript` in process, with no network.
/// Scripted faults count the job's attempts. Usage is deterministic: prompt tokens are the words of
/// the instructions and context, completion tokens the words of the reply.
public struct MockModel: ChatModel {
    public init() {}

    public func complete(_ request: ChatRequest, onText: @Sendable (String) -> Void) async throws -> ChatReply {
        let plan = try MockPlan(for: request, callNumber: request.attempt + MockPlan.repairRounds(in: request.messages))
        if plan.initialDelay > .zero { try await Task.sleep(for: plan.initialDelay) }
        try Task.checkCancellation()
        if let hostile = plan.hostile, ![.manyCalls, .deepArgs].contains(hostile) {
            throw GenerationError(.permanent, "mock: hostile=\(hostile.rawValue) is acted out by agentq mock-llm only")
        }
        switch plan.action {
        case .failPermanently:
            throw GenerationError(.permanent, "mock: permanent failure requested by the prompt")
        case .fail(.hang, _):
            try await Task.sleep(for: .seconds(365 * 86_400))
            throw CancellationError()
        case .fail(.rateLimited, let seconds):
            throw GenerationError(
                .transient, "mock: rate limited (429) on attempt \(request.attempt)",
                retryAfter: .seconds(seconds))
        case .fail(.serverError, _):
            throw GenerationError(.transient, "mock: transient failure on attempt \(request.attempt)")
        case .fail(.cut, _):
            for chunk in plan.chunks.prefix(plan.chunks.count / 2) { try await emit(chunk, plan, onText) }
            throw GenerationError(.transient, "mock: stream cut midway on attempt \(request.attempt)")
        case .toolCalls(let calls):
            return ChatReply(text: "", finishReason: plan.finishReason, usage: plan.usage, toolCalls: calls)
        case .answer:
            for chunk in plan.chunks { try await emit(chunk, plan, onText) }
            return ChatReply(text: plan.text, finishReason: plan.finishReason, usage: plan.usage)
        }
    }

    private func emit(_ chunk: String, _ plan: MockPlan, _ onText: @Sendable (String) -> Void) async throws {
        if plan.chunkInterval > .zero { try await Task.sleep(for: plan.chunkInterval) }
        onText(chunk)
    }
}
