import Logging

/// Prepares and runs `generate` jobs. Preparing a claimed batch reads its contexts and the agents
/// not in the catalog cache (the toolbox's; two statements in parallel), works out each job's
/// settings once (`GenerationSettings`: job over thread over agent), resolves tool sets, and opens
/// the streams of the jobs that stream (one statement); each job's time budget is its settings'
/// `timeout_ms`.
struct GenerateHandler: JobHandler {
    let generator: Generator
    let store: JobStore
    let streamStore: StreamStore
    let streams: LiveStreams
    /// The `recent_messages` setting: the context window when no option names one.
    let defaultRecentMessages: Int

    /// What one generation needs besides its claimed row.
    struct Prepared: Sendable {
        var agent: AgentRecord
        var context: JobContextRecord?
        var settings: GenerationSettings
        var tools: JobTools
        /// Its open stream, when it streams.
        var stream: LiveStreams.Handle?
    }

    func prepare(_ jobs: [ClaimedJob], logger: Logger) async -> [Int64: Preparation<Prepared>] {
        guard !jobs.isEmpty else { return [:] }
        let policy = generator.policy
        let agents: [String: AgentRecord]
        let contexts: [Int64: JobContextRecord]
        do {
            async let a = generator.toolbox.catalog.agents(named: jobs.compactMap(\.agentName)) {
                try await store.agents(named: $0, logger: logger)
            }
            async let c = store.contexts(jobIDs: jobs.map(\.id), recentMessages: defaultRecentMessages, logger: logger)
            (agents, contexts) = try await (a, c)
        } catch {
            return retryAll(jobs, error, policy: policy, logger: logger)
        }
        var outcomes: [Int64: Preparation<Prepared>] = [:]
        var ready: [(job: ClaimedJob, prepared: Prepared)] = []
        for job in jobs {
            guard let agent = job.agentName.flatMap({ agents[$0] }) else {
                outcomes[job.id] = .decided(policy.failed(job, error: "unknown agent \"\(job.agentName ?? "")\""))
                continue
            }
            do {
                let settings = try GenerationSettings(
                    agent: agent, threadOptions: contexts[job.id]?.threadAgentOptions,
                    jobOptions: job.options, defaultRecent: defaultRecentMessages)
                ready.append((job, Prepared(agent: agent, context: contexts[job.id], settings: settings, tools: JobTools())))
            } catch {
                outcomes[job.id] = .decided(policy.outcome(of: error, job: job, stopReason: nil))
            }
        }
        await reloadProvidersIfMissing(ready.map(\.prepared.settings.provider), logger: logger)
        let tools: [Int64: JobTools]
        do {
            tools = try await generator.toolbox.resolve(ready.map { ($0.job, $0.prepared.settings) }, logger: logger)
        } catch {
            return outcomes.merging(retryAll(ready.map(\.job), error, policy: policy, logger: logger)) { $1 }
        }
        let opened = await openStreams(
            ready.filter { $0.prepared.settings.streams && generator.models.knows($0.prepared.settings.provider) },
            logger: logger)
        for (job, var prepared) in ready {
            prepared.tools = tools[job.id] ?? JobTools()
            prepared.stream = opened[job.id]
            outcomes[job.id] = .ready(prepared, budget: prepared.settings.timeout)
        }
        return outcomes
    }

    func run(
        _ job: ClaimedJob, _ prepared: Prepared, stopReason: @escaping @Sendable () -> StopReason?,
        logger: Logger
    ) async -> FinishItem {
        await generator.run(job, prepared, streams: streams, stopReason: stopReason, logger: logger)
    }

    /// A fault loading the batch: counted as an attempt, with backoff, so a fault that persists (a
    /// broken schema, say) ends the jobs `failed` after `max_attempts` instead of looping.
    private func retryAll(
        _ jobs: [ClaimedJob], _ error: any Error, policy: OutcomePolicy,
        logger: Logger
    ) -> [Int64: Preparation<Prepared>] {
        let message = "could not load the job's context: \(describeDatabaseError(error))"
        logger.error("loading job contexts failed; retrying the jobs later", metadata: ["error": "\(message)"])
        return Dictionary(uniqueKeysWithValues: jobs.map { ($0.id, .decided(policy.retry($0, error: message))) })
    }

    /// Reads `agentq.providers` again when the table changed (the catalog notification), or when a job
    /// names a provider the cache lacks (at most every 2 s; `Maintenance` reloads them all every 30 s).
    private func reloadProvidersIfMissing(_ providers: [String], logger: Logger) async {
        let missing = providers.contains(where: { !generator.models.knows($0) }) && generator.models.isStale(maxAge: .seconds(2))
        let requested = generator.models.takeReloadRequest()
        guard missing || requested else { return }
        do {
            generator.models.update(with: try await store.providers(logger: logger))
        } catch {
            if requested { generator.models.requestReload() }
            logger.warning("loading providers failed", metadata: ["error": "\(describeDatabaseError(error))"])
        }
    }

    /// Opens a pending message and a stream for every job that streams, in one statement. A failure
    /// here is not fatal: those jobs run without live deltas and save their reply at the end.
    private func openStreams(_ jobs: [(job: ClaimedJob, prepared: Prepared)], logger: Logger) async -> [Int64: LiveStreams.Handle] {
        guard !jobs.isEmpty else { return [:] }
        let openings = jobs.map {
            StreamStore.Opening(
                jobID: $0.job.id, attempt: $0.job.attempt, model: $0.prepared.settings.model,
                provider: $0.prepared.settings.provider)
        }
        do {
            let opened = try await streamStore.open(openings, logger: logger)
            var handles: [Int64: LiveStreams.Handle] = [:]
            for o in openings where opened.contains(o.streamID) {
                let handle = LiveStreams.Handle(streamID: o.streamID, messageID: o.messageID, jobID: o.jobID, attempt: o.attempt)
                streams.open(handle)
                handles[o.jobID] = handle
            }
            return handles
        } catch {
            logger.warning(
                "opening streams failed; these jobs save their replies without live deltas",
                metadata: ["jobs": "\(openings.count)", "error": "\(describeDatabaseError(error))"])
            return [:]
        }
    }
}
