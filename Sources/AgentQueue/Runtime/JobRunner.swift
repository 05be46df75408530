import Foundation
import Logging

/// Runs one claimed generate job to an outcome: settings, context, the model call, the messages and
/// usage to save. It never throws: every fault becomes a `FinishItem` (retry, failed, cancelled).
public struct JobRunner: Sendable {
    public var models: ModelRegistry
    public var backoff: Backoff
    public var defaultRecentMessages: Int

    public init(models: ModelRegistry = ModelRegistry(), backoff: Backoff = Backoff(), defaultRecentMessages: Int = 100) {
        self.models = models
        self.backoff = backoff
        self.defaultRecentMessages = defaultRecentMessages
    }

    /// The outcome of `job` given its agent and context; `stopReason` tells why it was stopped, if it was.
    public func run(_ job: ClaimedJob, agent: AgentRecord?, context: JobContextRecord?,
                    stopReason: @Sendable () -> StopReason?, logger: Logger) async -> FinishItem {
        guard job.kind == "generate" else {
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .failed,
                              error: "job kind \"\(job.kind)\" is not handled by this worker")
        }
        guard let agent else {
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .failed,
                              error: "unknown agent \"\(job.agentName ?? "")\"")
        }
        var usage: [UsageRecord] = []
        do {
            let settings = try GenerationSettings(agent: agent, threadOptions: context?.threadAgentOptions,
                                                  jobOptions: job.options, defaultRecent: defaultRecentMessages)
            let model = try models.model(forProvider: settings.provider)
            let messages = ContextAssembler(limit: settings.recentMessages).assemble(
                messages: context?.messages ?? [], promptOrd: context?.promptOrd, promptStep: context?.promptStep,
                promptText: job.options["prompt"]?.stringValue)
            let request = ChatRequest(model: settings.model, instructions: settings.instructions, messages: messages,
                                      attempt: job.attempt)
            let reply = try await model.complete(request)
            let message = NewMessage(text: reply.text, model: settings.model, provider: settings.provider,
                                     usage: reply.usage, finishReason: reply.finishReason, agentName: agent.name)
            usage.append(UsageRecord(provider: settings.provider, model: settings.model, usage: reply.usage, messageID: message.id))
            let saved = settings.saveMessages == "none" ? [] : [message]
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .succeeded,
                              result: JobResultPayload(text: reply.text, messageIDs: saved.map(\.id), usage: reply.usage),
                              messages: saved, usage: usage)
        } catch {
            if let reason = stopReason() {
                return reason.finishItem(for: job, usage: usage, backoff: backoff)
            }
            if let failure = error as? GenerationError {
                logger.warning("generation failed", metadata: ["job_id": "\(job.id)", "attempt": "\(job.attempt)",
                                                                "error": "\(failure.message)"])
                switch failure.kind {
                case .permanent:
                    return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .failed, error: failure.message, usage: usage)
                case .transient:
                    let delay = failure.retryAfter ?? backoff.delay(afterAttempt: job.attempt)
                    return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .retry, error: failure.message,
                                      retryAt: Date().addingTimeInterval(delay.seconds), usage: usage)
                }
            }
            // Unexpected errors (cancellation without a reason, bugs) are retried like transient faults.
            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .retry, error: "\(error)",
                              retryAt: Date().addingTimeInterval(backoff.delay(afterAttempt: job.attempt).seconds), usage: usage)
        }
    }
}

extension Duration {
    /// This duration in seconds, as a Double.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
