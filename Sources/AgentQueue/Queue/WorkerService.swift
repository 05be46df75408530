import AsyncHTTPClient
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// One worker process: claims jobs in batches sized to its free slots, runs them, extends their
/// leases, and finishes them in batches. A `Service`: on graceful shutdown it stops claiming, gives
/// running jobs `grace` to finish, then hands the rest back to the queue.
public struct WorkerService: Service {
    public let client: PostgresClient
    public let configuration: WorkerConfiguration
    public let runner: JobRunner
    /// Runs `embed` jobs.
    public let embedder: EmbedRunner
    public let logger: Logger
    /// The worker's HTTP client for model calls and HTTP tools (shut down when `run()` ends).
    private let http: HTTPClient
    /// Tools registered in code, by name (they win over `agentq.tools` rows of the same name).
    public let swiftTools: [String: SwiftTool]

    /// `models`: providers registered in code; the worker adds `openai` and the `agentq.providers` rows.
    /// `tools`: Swift tools this worker runs for any agent, thread or job whose tool set names them.
    public init(client: PostgresClient, configuration: WorkerConfiguration, models: [String: any ChatModel] = [:],
                tools: [SwiftTool] = [], logger: Logger) {
        self.client = client
        self.configuration = configuration
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: .init(configuration.llmConnectTimeout), read: .init(configuration.llmIdleTimeout))
        // Never follow redirects: an allowed HTTP tool host could send the call to one not allowed,
        // and model endpoints do not redirect.
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60),
                                                 concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.concurrency))
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        let registry = ModelRegistry(http: http)
        for (name, model) in models { registry.register(name, model) }
        swiftTools = Dictionary(tools.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        let memory = MemoryStore(client: client, workerID: configuration.id)
        self.runner = JobRunner(models: registry, backoff: configuration.backoff,
                                defaultRecentMessages: configuration.recentMessages,
                                toolbox: Toolbox(store: ToolStore(client: client, workerID: configuration.id),
                                                 caller: ToolCaller(http: http, allowedHosts: configuration.httpToolHosts)),
                                memory: memory)
        self.embedder = EmbedRunner(models: registry, store: memory, backoff: configuration.backoff)
        var logger = logger
        logger[metadataKey: "worker_id"] = "\(configuration.id)"
        self.logger = logger
    }

    /// Shared state of the loops of one run.
    private final class RunState: Sendable {
        let scheduler: Mutex<ClaimScheduler>
        let shuttingDown = Atomic<Bool>(false)
        let wakeups: AsyncStream<Void>
        let wakeContinuation: AsyncStream<Void>.Continuation
        let registry = JobRegistry()
        let completions: CompletionQueue
        let streams: LiveStreams

        init(concurrency: Int, maxBatch: Int, throttle: Duration) {
            streams = LiveStreams(throttle: throttle)
            scheduler = Mutex(ClaimScheduler(concurrency: concurrency))
            (wakeups, wakeContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            completions = CompletionQueue(maxBatch: maxBatch)
        }

        func wake(_ trigger: ClaimScheduler.Trigger) {
            scheduler.withLock { $0.note(trigger) }
            wakeContinuation.yield()
        }
    }

    public func run() async throws {
        let store = JobStore(client: client, workerID: configuration.id)
        let streamStore = StreamStore(client: client, workerID: configuration.id)
        let state = RunState(concurrency: configuration.concurrency, maxBatch: configuration.maxCompletionBatch,
                             throttle: configuration.streamThrottle)
        do {
            try await store.register(host: ProcessInfo.processInfo.hostName, pid: Int(ProcessInfo.processInfo.processIdentifier),
                                     queues: configuration.queues, concurrency: configuration.concurrency, logger: logger)
        } catch {
            try? await http.shutdown()
            throw error
        }
        logger.info("worker started", metadata: ["queues": "\(configuration.queues.joined(separator: ","))",
                                                  "concurrency": "\(configuration.concurrency)"])
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { outer in
                outer.addTask {
                    await state.completions.runFlusher(store: store, logger: logger, giveUpAfterClose: configuration.grace) { held in
                        for job in held { state.registry.remove(job.id, attempt: job.attempt) }
                        state.wake(.slotsFreed(held.count))
                    }
                }
                await withDiscardingTaskGroup { background in
                    background.addTask {
                        await JobListener(client: client, logger: logger).run(
                            onWake: { state.wake(.wake) },
                            onCancel: { id in state.registry.stop(id, .cancelRequested) })
                    }
                    background.addTask { await pollLoop(store: store, state: state) }
                    background.addTask { await heartbeatLoop(store: store, state: state) }
                    background.addTask { await maintenanceLoop(store: store) }
                    if let interval = configuration.queueDepthInterval {
                        background.addTask { await queueDepthLoop(store: store, every: interval) }
                    }
                    background.addTask {
                        await state.streams.run(store: streamStore, logger: logger) { job in
                            state.registry.stop(job, .cancelRequested)
                        }
                    }
                    await claimLoop(store: store, state: state, streamStore: streamStore)
                    background.cancelAll()
                }
                state.completions.close()
            }
        } onGracefulShutdown: {
            state.shuttingDown.store(true, ordering: .relaxed)
            state.wakeContinuation.yield()
        }
        do {
            try await store.deregister(logger: logger)
        } catch {
            logger.warning("could not deregister", metadata: ["error": "\(describeDatabaseError(error))"])
        }
        try? await http.shutdown()
        logger.info("worker stopped")
    }

    // MARK: - Claiming

    private func claimLoop(store: JobStore, state: RunState, streamStore: StreamStore) async {
        await withDiscardingTaskGroup { jobs in
            var wakeups = state.wakeups.makeAsyncIterator()
            while !state.shuttingDown.load(ordering: .relaxed) && !Task.isCancelled {
                let size = state.scheduler.withLock { $0.nextClaimSize() }
                if size > 0 {
                    let claimed: [ClaimedJob]
                    let started = ContinuousClock.now
                    do {
                        claimed = try await store.claim(queues: configuration.queues, limit: size,
                                                        lease: configuration.lease, logger: logger)
                        logger.debug("claimed", metadata: ["asked": "\(size)", "got": "\(claimed.count)",
                                                           "ms": "\((ContinuousClock.now - started).seconds * 1000)"])
                    } catch {
                        logger.error("claim failed; retrying at the next wake-up", metadata: ["error": "\(describeDatabaseError(error))"])
                        continue
                    }
                    state.scheduler.withLock { $0.claimed(claimed.count, asked: size) }
                    WorkerMetrics.claimBatch(claimed.count)
                    for job in claimed { WorkerMetrics.claimed(job) }
                    if !claimed.isEmpty { await start(claimed, in: &jobs, store: store, streamStore: streamStore, state: state) }
                    continue
                }
                guard await wakeups.next() != nil else { break }
            }
            // Graceful shutdown: no more claims; running jobs get the grace period, then are handed back.
            let grace = configuration.grace
            jobs.addTask {
                let deadline = ContinuousClock.now + grace
                while state.registry.count > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                if state.registry.count > 0 {
                    logger.info("grace period over; handing jobs back", metadata: ["jobs": "\(state.registry.count)"])
                    state.registry.stopAll(.shutdown)
                }
            }
        }
    }

    /// Loads what the claimed jobs need (agents and contexts, two queries in parallel), opens the
    /// streams of those that stream (one statement), and starts them.
    private func start(_ claimed: [ClaimedJob], in jobs: inout DiscardingTaskGroup, store: JobStore,
                       streamStore: StreamStore, state: RunState) async {
        let agentNames = Array(Set(claimed.compactMap(\.agentName)))
        let generateIDs = claimed.filter { $0.kind == "generate" }.map(\.id)
        let embedIDs = claimed.filter { $0.kind == "embed" }.map(\.id)
        let claimedAt = ContinuousClock.now
        WorkerMetrics.jobsInHand.increment(by: Double(claimed.count))
        let agents: [String: AgentRecord]
        let contexts: [Int64: JobContextRecord]
        let tools: [Int64: JobTools]
        var embedWork: [Int64: (model: String, inputs: [MemoryStore.EmbedInput])]?
        do {
            async let a = store.agents(named: agentNames, logger: logger)
            async let c = store.contexts(jobIDs: generateIDs, recentMessages: configuration.recentMessages, logger: logger)
            // A fault reading the embed jobs' texts retries those jobs only, never the generations.
            async let e: [Int64: (model: String, inputs: [MemoryStore.EmbedInput])]? = {
                do { return try await embedder.store.embedInputs(jobIDs: embedIDs, logger: logger) } catch {
                    logger.error("loading embed jobs' texts failed; retrying them later",
                                 metadata: ["error": "\(describeDatabaseError(error))"])
                    return nil
                }
            }()
            let started = ContinuousClock.now
            (agents, contexts, embedWork) = try await (a, c, e)
            tools = try await loadTools(claimed, agents: agents, contexts: contexts)
            logger.debug("contexts loaded", metadata: ["jobs": "\(claimed.count)", "ms": "\((ContinuousClock.now - started).seconds * 1000)"])
        } catch {
            // Counted as an attempt, with backoff: a fault that persists (a broken schema, say) ends
            // the jobs `failed` after max_attempts instead of claiming and releasing them in a loop.
            let message = "could not load the job's context: \(describeDatabaseError(error))"
            logger.error("loading job contexts failed; retrying the jobs later", metadata: ["error": "\(message)"])
            for job in claimed {
                _ = state.registry.add(job.id, attempt: job.attempt)
                let retryAt = Date().addingTimeInterval(configuration.backoff.delay(afterAttempt: job.attempt).seconds)
                jobs.addTask {
                    await finish(job, item: FinishItem(jobID: job.id, attempt: job.attempt, outcome: .retry,
                                                       error: message, retryAt: retryAt), claimedAt: claimedAt, state: state)
                }
            }
            return
        }
        await refreshProviders(store: store, needed: agents.values.map(\.model))
        let live = await openStreams(claimed, agents: agents, contexts: contexts, streamStore: streamStore, state: state)
        for job in claimed {
            let agent = job.agentName.flatMap { agents[$0] }
            // An embed job is one request or a few: a minute, not a generation's ten.
            let timeoutMs = job.options["timeout_ms"]?.intValue
                ?? (job.kind == "embed" ? 60_000 : agent?.options["timeout_ms"]?.intValue ?? 600_000)
            let control = state.registry.add(job.id, attempt: job.attempt, budget: .milliseconds(timeoutMs))
            let context = contexts[job.id]
            let handle = live[job.id]
            let jobTools = tools[job.id] ?? JobTools()
            let work = embedWork?[job.id]
            let embedLoaded = embedWork != nil
            jobs.addTask {
                let item = await execute(job, control: control) { logger in
                    if job.kind == "embed" {
                        guard embedLoaded else {
                            return FinishItem(jobID: job.id, attempt: job.attempt, outcome: .retry,
                                              error: "could not read the texts to embed",
                                              retryAt: Date().addingTimeInterval(configuration.backoff.delay(afterAttempt: job.attempt).seconds))
                        }
                        return await embedder.run(job, work: work, stopReason: { control.reason }, logger: logger)
                    }
                    return await runner.run(job, agent: agent, context: context, live: handle.map { (state.streams, $0) },
                                            tools: jobTools, stopReason: { control.reason }, logger: logger)
                }
                await finish(job, item: item, claimedAt: claimedAt, state: state)
            }
        }
    }

    /// Resolves each generate job's tool set (Swift tools first, then `agentq.tools` rows: one query
    /// for the batch) and, for retried or resumed attempts, the calls left open. Jobs without tools
    /// cost no query.
    private func loadTools(_ claimed: [ClaimedJob], agents: [String: AgentRecord],
                           contexts: [Int64: JobContextRecord]) async throws -> [Int64: JobTools] {
        var names: [Int64: [String]] = [:]
        var resumable: [Int64] = []
        for job in claimed where job.kind == "generate" {
            guard let agent = job.agentName.flatMap({ agents[$0] }),
                  let settings = try? runner.settings(for: job, agent: agent, context: contexts[job.id]),
                  !settings.toolNames.isEmpty else { continue }
            names[job.id] = settings.toolNames
            if job.attempt > 1 { resumable.append(job.id) }
        }
        guard !names.isEmpty, let toolbox = runner.toolbox else { return [:] }
        let open = try await toolbox.store.openCalls(jobIDs: resumable, logger: logger)
        let wanted = Set(names.values.joined()).union(open.values.joined().map(\.name)).subtracting(swiftTools.keys)
        var definitions = try await toolbox.store.definitions(named: wanted.sorted(), logger: logger)
        for (name, tool) in swiftTools { definitions[name] = ToolDefinition(tool) }
        var tools: [Int64: JobTools] = [:]
        for (id, jobNames) in names {
            let openCalls = open[id] ?? []
            let needed = Set(jobNames).union(openCalls.map(\.name))
            tools[id] = JobTools(definitions: definitions.filter { needed.contains($0.key) },
                                 missing: jobNames.filter { definitions[$0] == nil }, open: openCalls)
        }
        return tools
    }

    /// Opens a pending message and a stream for every job that streams, in one statement. A failure
    /// here is not fatal: those jobs run without live deltas and save their reply at the end.
    private func openStreams(_ claimed: [ClaimedJob], agents: [String: AgentRecord], contexts: [Int64: JobContextRecord],
                             streamStore: StreamStore, state: RunState) async -> [Int64: LiveStreams.Handle] {
        var openings: [StreamStore.Opening] = []
        for job in claimed where job.kind == "generate" {
            guard let agent = job.agentName.flatMap({ agents[$0] }),
                  let settings = try? runner.settings(for: job, agent: agent, context: contexts[job.id]),
                  settings.streams, runner.models.knows(settings.provider) else { continue }
            openings.append(StreamStore.Opening(jobID: job.id, attempt: job.attempt, model: settings.model, provider: settings.provider))
        }
        guard !openings.isEmpty else { return [:] }
        do {
            let opened = try await streamStore.open(openings, logger: logger)
            var handles: [Int64: LiveStreams.Handle] = [:]
            for o in openings where opened.contains(o.streamID) {
                let handle = LiveStreams.Handle(streamID: o.streamID, messageID: o.messageID, jobID: o.jobID, attempt: o.attempt)
                state.streams.open(handle)
                handles[o.jobID] = handle
            }
            return handles
        } catch {
            logger.warning("opening streams failed; these jobs save their replies without live deltas",
                           metadata: ["jobs": "\(openings.count)", "error": "\(describeDatabaseError(error))"])
            return [:]
        }
    }

    /// Reloads `agentq.providers` when the cached rows are old or a provider is missing.
    private func refreshProviders(store: JobStore, needed models: [String]) async {
        let names = Set(models.compactMap { $0.split(separator: ":", maxSplits: 1).first.map(String.init) })
        let missing = names.contains { !runner.models.knows($0) }
        guard runner.models.isStale(maxAge: .seconds(30)) || (missing && runner.models.isStale(maxAge: .seconds(2))) else { return }
        do {
            runner.models.update(with: try await store.providers(logger: logger))
        } catch {
            logger.warning("loading providers failed", metadata: ["error": "\(describeDatabaseError(error))"])
        }
    }

    /// Runs a job's `work`, racing it against its stop switch (cancel, lost lease, shutdown, time budget).
    private func execute(_ job: ClaimedJob, control: JobControl,
                         work: @escaping @Sendable (Logger) async -> FinishItem) async -> FinishItem {
        var jobLogger = logger
        jobLogger[metadataKey: "job_id"] = "\(job.id)"
        if let thread = job.threadID { jobLogger[metadataKey: "thread_id"] = "\(thread)" }
        let logger = jobLogger
        return await withTaskGroup(of: FinishItem?.self) { group in
            group.addTask { await work(logger) }
            group.addTask { await control.waitForStop(); return nil }
            while let next = await group.next() {
                if let item = next {
                    group.cancelAll()
                    return item
                }
                if control.reason != nil { group.cancelAll() }   // stop the runner; its item follows
            }
            return (control.reason ?? .shutdown).finishItem(for: job, usage: [], backoff: configuration.backoff)
        }
    }

    /// Hands the outcome to the completion flusher (which frees the slot once it is written).
    private func finish(_ job: ClaimedJob, item: FinishItem, claimedAt: ContinuousClock.Instant, state: RunState) async {
        let applied = await state.completions.submit(item)
        WorkerMetrics.jobsInHand.decrement()
        WorkerMetrics.finished(job, outcome: applied ? item.outcome.rawValue : "lease_lost", after: claimedAt.elapsed)
        if !applied {
            logger.warning("job outcome not applied: the lease was lost", metadata: ["job_id": "\(job.id)",
                                                                                      "outcome": "\(item.outcome.rawValue)"])
        }
    }

    // MARK: - Background loops

    /// The fallback wake-up (NOTIFY is only a hint), the fallback for missed cancel notifications, and
    /// the time budgets of held jobs.
    private func pollLoop(store: JobStore, state: RunState) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.pollInterval)
            if Task.isCancelled { return }
            state.wake(.wake)
            state.registry.stopOverdue()
            let held = state.registry.ids
            if !held.isEmpty, let ids = try? await store.cancelRequested(among: held, logger: logger) {
                for id in ids { state.registry.stop(id, .cancelRequested) }
            }
        }
    }

    /// Extends the leases of held jobs; drops jobs that were taken back.
    private func heartbeatLoop(store: JobStore, state: RunState) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            let attempts = state.registry.held
            do {
                let held = try await store.heartbeat(held: attempts, lease: configuration.lease, logger: logger)
                for (id, _) in attempts {
                    switch held[id] {
                    case nil: state.registry.stop(id, .leaseLost)
                    case true?: state.registry.stop(id, .cancelRequested)
                    case false?: break
                    }
                }
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(describeDatabaseError(error))"])
            }
        }
    }

    /// Samples the depth of this worker's queues for the metrics (`--metrics-port` turns it on).
    private func queueDepthLoop(store: JobStore, every interval: Duration) async {
        while !Task.isCancelled {
            do {
                let depths = try await store.queueDepths(configuration.queues, logger: logger)
                for queue in configuration.queues { WorkerMetrics.queueDepth(queue, depths[queue] ?? 0) }
            } catch {
                logger.debug("sampling queue depth failed", metadata: ["error": "\(describeDatabaseError(error))"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Prunes finished jobs and old deltas now and then (one worker at a time does the work).
    private func maintenanceLoop(store: JobStore) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.pruneInterval)
            if Task.isCancelled { return }
            do {
                let pruned = try await store.prune(batch: 5000, logger: logger)
                logger.debug("pruned", metadata: ["deleted": "\(pruned)"])
            } catch {
                logger.warning("prune failed", metadata: ["error": "\(describeDatabaseError(error))"])
            }
        }
    }
}
