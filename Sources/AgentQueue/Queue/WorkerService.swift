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
    public let logger: Logger

    public init(client: PostgresClient, configuration: WorkerConfiguration, models: ModelRegistry = ModelRegistry(),
                logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.runner = JobRunner(models: models, backoff: configuration.backoff,
                                defaultRecentMessages: configuration.recentMessages)
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

        init(concurrency: Int, maxBatch: Int) {
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
        let state = RunState(concurrency: configuration.concurrency, maxBatch: configuration.maxCompletionBatch)
        try await store.register(host: ProcessInfo.processInfo.hostName, pid: Int(ProcessInfo.processInfo.processIdentifier),
                                 queues: configuration.queues, concurrency: configuration.concurrency, logger: logger)
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
                    await claimLoop(store: store, state: state)
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
        logger.info("worker stopped")
    }

    // MARK: - Claiming

    private func claimLoop(store: JobStore, state: RunState) async {
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
                    if !claimed.isEmpty { await start(claimed, in: &jobs, store: store, state: state) }
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

    /// Loads what the claimed jobs need (agents and contexts, two queries in parallel) and starts them.
    private func start(_ claimed: [ClaimedJob], in jobs: inout DiscardingTaskGroup, store: JobStore, state: RunState) async {
        let agentNames = Array(Set(claimed.compactMap(\.agentName)))
        let generateIDs = claimed.filter { $0.kind == "generate" }.map(\.id)
        let agents: [String: AgentRecord]
        let contexts: [Int64: JobContextRecord]
        do {
            async let a = store.agents(named: agentNames, logger: logger)
            async let c = store.contexts(jobIDs: generateIDs, recentMessages: configuration.recentMessages, logger: logger)
            let started = ContinuousClock.now
            (agents, contexts) = try await (a, c)
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
                                                       error: message, retryAt: retryAt), state: state)
                }
            }
            return
        }
        for job in claimed {
            let agent = job.agentName.flatMap { agents[$0] }
            let timeoutMs = job.options["timeout_ms"]?.intValue ?? agent?.options["timeout_ms"]?.intValue ?? 600_000
            let control = state.registry.add(job.id, attempt: job.attempt, budget: .milliseconds(timeoutMs))
            let context = contexts[job.id]
            jobs.addTask {
                let item = await execute(job, agent: agent, context: context, control: control)
                await finish(job, item: item, state: state)
            }
        }
    }

    /// Runs a job, racing it against its stop switch (cancel, lost lease, shutdown, time budget).
    private func execute(_ job: ClaimedJob, agent: AgentRecord?, context: JobContextRecord?, control: JobControl) async -> FinishItem {
        var jobLogger = logger
        jobLogger[metadataKey: "job_id"] = "\(job.id)"
        if let thread = job.threadID { jobLogger[metadataKey: "thread_id"] = "\(thread)" }
        let logger = jobLogger
        return await withTaskGroup(of: FinishItem?.self) { group in
            group.addTask {
                await runner.run(job, agent: agent, context: context, stopReason: { control.reason }, logger: logger)
            }
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
    private func finish(_ job: ClaimedJob, item: FinishItem, state: RunState) async {
        let applied = await state.completions.submit(item)
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
