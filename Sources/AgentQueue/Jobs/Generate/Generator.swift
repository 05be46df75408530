import Foundation
import Logging

/// Runs one prepared generate job to an outcome: context, the model call (repeated after transient
/// faults up to `max_retries`), tool steps, structured output checks, and the messages, usage and
/// stream end to save. It never throws: every fault becomes a `FinishItem` (`OutcomePolicy`).
public struct Generator: Sendable {
    public var models: ModelRegistry
    public var policy: OutcomePolicy
    /// When a failed model call is repeated inside the job.
    public var callRetry: CallRetryPolicy
    /// Where tool steps are saved and how tools are resolved and called.
    public var toolbox: Toolbox
    /// Where the search part of a context comes from (nil: `context.search` is ignored).
    public var memory: MemoryStore?

    public init(
        models: ModelRegistry, policy: OutcomePolicy = OutcomePolicy(), callRetry: CallRetryPolicy = CallRetryPolicy(),
        toolbox: Toolbox, memory: MemoryStore? = nil
    ) {
        self.models = models
        self.policy = policy
        self.callRetry = callRetry
        self.toolbox = toolbox
        self.memory = memory
    }

    /// The outcome of `job`. `streams` holds its open stream, if it streams; `stopReason` tells why
    /// it was stopped, if it was.
    func run(
        _ job: ClaimedJob, _ prepared: GenerateHandler.Prepared, streams: LiveStreams,
        stopReason: @escaping @Sendable () -> StopReason?, logger: Logger
    ) async -> FinishItem {
        let calls = CallLog(settings: prepared.settings)
        let stream = prepared.stream.map { LiveTarget(streams: streams, handle: $0) }
        var item: FinishItem
        do {
            item = try await generate(job, prepared, stream: stream, calls: calls, stopReason: stopReason, logger: logger)
        } catch {
            item = policy.outcome(of: error, job: job, stopReason: stopReason())
            if item.outcome == .failed || item.outcome == .retry {
                logger.warning("generation failed", metadata: ["attempt": "\(job.attempt)", "error": "\(item.error ?? "")"])
            }
        }
        logger.debug("generation ended", metadata: ["outcome": "\(item.outcome.rawValue)"])
        if let stream, let handle = stream.handle {
            let last = await stream.streams.finish(handle.streamID)
            item.stream = last.map { FinishItem.StreamEnd(streamID: handle.streamID, seq: $0.seq, delta: $0.text) }
        }
        item.usage = calls.usageRecords
        item.llmCalls = calls.exchanges
        return item
    }

    /// The generation: open tool calls of an earlier attempt first, then model steps (running the
    /// tools each asks for) until an answer, a question for the application, or `max_steps`.
    private func generate(
        _ job: ClaimedJob, _ prepared: GenerateHandler.Prepared, stream: LiveTarget?, calls: CallLog,
        stopReason: @Sendable () -> StopReason?, logger: Logger
    ) async throws -> FinishItem {
        let (agent, context, settings, tools) = (prepared.agent, prepared.context, prepared.settings, prepared.tools)
        let model = try models.model(forProvider: settings.provider)
        guard tools.missing.isEmpty else {
            throw GenerationError(
                .permanent,
                "unknown tool\(tools.missing.count == 1 ? "" : "s") "
                    + tools.missing.map { "\"\($0)\"" }.joined(separator: ", ")
                    + " (not in agentq.tools and not registered on this worker)")
        }
        let steps = ToolExecutor(
            toolbox: toolbox, job: job, agent: agent, settings: settings, tools: tools, stream: stream,
            logger: logger)
        if let parked = steps.parkedAgain() { return parked }
        let resumed = try await steps.resume(promptOrd: context?.promptOrd)
        let assembler = ContextAssembler(limit: settings.recentMessages, excludeTools: settings.excludeToolMessages)
        let recent = (context?.messages ?? []) + resumed
        let found = try await searchContext(
            job, agent: agent, settings: settings, context: context,
            window: assembler.window(recent, promptOrd: context?.promptOrd), calls: calls,
            logger: logger)
        let messages = assembler.assemble(
            messages: recent, search: found, promptOrd: context?.promptOrd,
            promptStep: context?.promptStep, promptText: job.options["prompt"]?.stringValue)
        var request = ChatRequest(
            model: settings.model, instructions: settings.instructions, messages: messages,
            attempt: job.attempt, temperature: settings.temperature, maxTokens: settings.maxTokens,
            responseSchema: settings.schema, keepExchange: settings.logRaw)
        var stepsTaken = ToolExecutor.stepsTaken(in: messages)
        var reply: ChatReply
        while true {
            request.tools = stepsTaken < settings.maxSteps ? steps.offered : []
            // Structured output streams nothing until the object is checked: the stream then holds
            // exactly the final JSON, as the saved message does.
            let target = settings.schema == nil ? stream?.handle : nil
            let onText: @Sendable (String) -> Void = { text in
                calls.streamed(text)
                if let stream, let target { stream.streams.append(text, to: target.streamID) }
            }
            reply = try await call(model, request, settings: settings, calls: calls, onText: onText, stopReason: stopReason)
            logger.debug("model answered", metadata: ["step": "\(stepsTaken)", "tool_calls": "\(reply.toolCalls.count)"])
            guard !reply.toolCalls.isEmpty, !request.tools.isEmpty else { break }
            stepsTaken += 1
            let step = try await steps.save(reply, usage: reply.usage)
            logger.debug("step saved", metadata: ["step": "\(stepsTaken)"])
            if let parked = step.parked { return parked }
            request.messages += step.messages
        }
        var object: JSONValue?
        if let schema = settings.schema {
            (object, reply) = try await checkObject(
                reply, schema: schema, model: model, request: &request,
                settings: settings, calls: calls, stopReason: stopReason)
            if let stream, let handle = stream.handle { stream.streams.append(reply.text, to: handle.streamID) }
        }
        let message = NewMessage(
            id: stream?.handle?.messageID ?? UUID(), text: reply.text, model: settings.model,
            provider: settings.provider, usage: calls.totalUsage, finishReason: reply.finishReason,
            agentName: agent.name)
        calls.attach(messageID: message.id)
        let saved = settings.saveMessages == .none ? [] : [message]
        return FinishItem(
            jobID: job.id, attempt: job.attempt, outcome: .succeeded,
            result: JobResultPayload(
                text: reply.text, object: object, messageIDs: saved.map(\.id),
                usage: calls.totalUsage),
            messages: saved)
    }

    /// The search part of the context (`context.search`): hits for the prompt among the thread's
    /// earlier turns (or the user's threads) with their neighbours, leaving out the recent window.
    /// The vector leg uses the prompt's saved vector, else embeds the prompt once and saves it with
    /// the prompt message; an embedding fault drops the vector leg, never the generation.
    private func searchContext(
        _ job: ClaimedJob, agent: AgentRecord, settings: GenerationSettings,
        context: JobContextRecord?, window: [ContextMessage], calls: CallLog,
        logger: Logger
    ) async throws -> [ContextMessage] {
        guard let search = settings.search, let memory, let threadID = job.threadID else { return [] }
        let prompt = context?.messages.first { $0.ord == context?.promptOrd && $0.step == context?.promptStep }
        let query = prompt?.text ?? job.options["prompt"]?.stringValue
        var embedding: [Float]?
        if settings.searchesVectors, let embeddingModel = agent.embeddingModel, let query, !query.isEmpty {
            do {
                embedding = try await promptEmbedding(
                    query, job: job, messageID: prompt?.id, model: embeddingModel,
                    memory: memory, calls: calls, logger: logger)
            } catch {
                logger.warning(
                    "embedding the prompt failed; searching without the vector leg",
                    metadata: ["job_id": "\(job.id)", "error": "\(error)"])
            }
        }
        do {
            return try await memory.contextSearch(
                threadID: threadID, query: query, embedding: embedding,
                model: agent.embeddingModel, search: search, beforeOrd: context?.promptOrd,
                exclude: window.map(\.id), logger: logger)
        } catch {
            throw GenerationError(.transient, "searching the context failed: \(describeDatabaseError(error))")
        }
    }

    /// The prompt's vector of `model` (`provider:model`): saved, or computed now (one usage row) and
    /// saved with the prompt message, unless the prompt was saved with `embed => false` (or not saved).
    private func promptEmbedding(
        _ text: String, job: ClaimedJob, messageID: UUID?, model: String, memory: MemoryStore,
        calls: CallLog, logger: Logger
    ) async throws -> [Float] {
        var input = String(text.prefix(10_000))
        var saveAs: MemoryStore.EmbedInput?
        if let messageID, let prompt = try await memory.promptEmbedding(messageID: messageID, model: model, logger: logger) {
            if let saved = prompt.saved { return saved }
            input = prompt.input.input
            if prompt.embeddable { saveAs = prompt.input }
        }
        let (provider, name) = try ModelRegistry.split(model, what: "embedding model")
        let result = try await models.embedder(forProvider: provider).embed(model: name, inputs: [input])
        calls.add(
            UsageRecord(
                provider: provider, model: name, usage: TokenUsage(promptTokens: result.promptTokens, completionTokens: 0),
                messageID: messageID, kind: "embedding"))
        guard let vector = result.vectors.first else { throw GenerationError(.transient, "the embeddings response is empty") }
        if let saveAs {
            _ = try await memory.saveJobEmbeddings(
                jobID: job.id, attempt: job.attempt, model: model, inputs: [saveAs],
                vectors: [vector], logger: logger)
        }
        return vector
    }

    /// One model call, repeated after transient faults that streamed nothing (429 honouring
    /// Retry-After, 5xx, refused connections) up to `max_retries` times (`CallRetryPolicy`).
    func call(
        _ model: any ChatModel, _ request: ChatRequest, settings: GenerationSettings, calls: CallLog,
        onText: @escaping @Sendable (String) -> Void, stopReason: @Sendable () -> StopReason?
    ) async throws -> ChatReply {
        var repeats = 0
        while true {
            calls.begin()
            do {
                let reply = try await model.complete(request, onText: onText)
                try Self.checkLimits(reply)  // a refusal ends the call as failed (below)
                calls.end(reply.usage, exchange: reply.exchange, failed: nil)
                return reply
            } catch let failure as GenerationError {
                calls.end(nil, exchange: failure.exchange, failed: failure.message)
                guard stopReason() == nil,
                    let wait = callRetry.wait(after: failure, repeats: repeats, maxRetries: settings.maxRetries)
                else {
                    throw failure
                }
                repeats += 1
                try await Task.sleep(for: wait)
            } catch {
                calls.end(nil, exchange: nil, failed: "\(error)")
                throw error
            }
        }
    }

    /// Parses and checks a structured answer; one repair round (the model sees its answer and the
    /// problems), then a clear failure.
    private func checkObject(
        _ first: ChatReply, schema: JSONValue, model: any ChatModel, request: inout ChatRequest,
        settings: GenerationSettings, calls: CallLog,
        stopReason: @Sendable () -> StopReason?
    ) async throws -> (JSONValue, ChatReply) {
        var reply = first
        for round in 0...1 {
            let problems: [String]
            if let value = try? JSONValue.parse(reply.text) {
                problems = JSONSchemaValidator(schema: schema).problems(in: value)
                if problems.isEmpty {
                    return (
                        value,
                        ChatReply(
                            text: value.jsonString, finishReason: reply.finishReason,
                            usage: reply.usage)
                    )
                }
            } else {
                problems = ["the answer is not JSON"]
            }
            let summary = problems.prefix(5).joined(separator: "; ")
            if round == 1 {
                throw GenerationError(.permanent, "the model's answer does not match the schema after one repair: \(summary)")
            }
            request.messages += [
                ChatMessage(role: .assistant, text: reply.text),
                ChatMessage(
                    role: .user,
                    text: "\(Self.repairPrefix): \(summary). "
                        + "Answer again with only a JSON value that matches the schema.")
            ]
            reply = try await call(model, request, settings: settings, calls: calls, onText: { _ in }, stopReason: stopReason)
        }
        throw GenerationError(.permanent, "unreachable")
    }

    /// Refuses a reply past the caps on what a model hands back (README: Limits), whatever the
    /// provider: its text, its tool calls in one step, one call's arguments.
    static func checkLimits(_ reply: ChatReply) throws {
        if reply.text.utf8.count > Limits.replyTextBytes {
            throw GenerationError(.permanent, "the model's reply is over \(Limits.replyTextBytes) bytes")
        }
        if reply.toolCalls.count > Limits.toolCallsPerStep {
            throw GenerationError(
                .permanent,
                "the model asked for \(reply.toolCalls.count) tool calls in one step (at most \(Limits.toolCallsPerStep))")
        }
        if let call = reply.toolCalls.first(where: {
            $0.arguments.utf8.count + $0.name.utf8.count + $0.id.utf8.count > Limits.toolArgumentsBytes
        }) {
            throw GenerationError(
                .permanent, "the model's tool call \(call.name.prefix(64)) has arguments over \(Limits.toolArgumentsBytes) bytes")
        }
    }

    /// How a structured-output repair request starts.
    public static let repairPrefix = "Your answer does not match the JSON Schema"
}
