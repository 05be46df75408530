import Logging
import ServiceLifecycle

/// Claims jobs in batches sized to the free slots (`ClaimScheduler` decides when and how many) and
/// starts them through the dispatcher; the running jobs are tasks of this service. Wakes on NOTIFY
/// (the listener), on freed slots, and on a fallback poll, since NOTIFY is only a hint. On graceful
/// shutdown it claims no more, gives running jobs `grace` to finish, then hands the rest back.
struct ClaimLoop: Service {
    let store: JobStore
    let dispatcher: JobDispatcher
    let state: WorkerState
    let configuration: WorkerConfiguration
    let logger: Logger

    func run() async {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { background in
                background.addTask { await pollFallback() }
                await claimUntilStopped()
                background.cancelAll()
            }
        } onGracefulShutdown: {
            state.stopClaiming()
        }
    }

    /// Wakes the loop every poll interval.
    private func pollFallback() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.pollInterval)
            if Task.isCancelled { return }
            state.wake(.wake)
        }
    }

    private func claimUntilStopped() async {
        while !state.registered && !state.isStopping && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
        await withDiscardingTaskGroup { jobs in
            var wakeups = state.wakeups.makeAsyncIterator()
            while !state.isStopping && !Task.isCancelled {
                let size = state.scheduler.withLock { $0.nextClaimSize() }
                if size > 0 {
                    if let claimed = await claim(size), !claimed.isEmpty {
                        await dispatcher.start(claimed, in: &jobs)
                    }
                    continue
                }
                guard await wakeups.next() != nil else { break }
            }
            let grace = configuration.grace
            let registry = state.registry
            jobs.addTask {
                let deadline = ContinuousClock.now + grace
                while registry.count > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                if registry.count > 0 {
                    logger.info("grace period over; handing jobs back", metadata: ["jobs": "\(registry.count)"])
                    registry.stopAll(.shutdown)
                }
            }
        }
    }

    /// One claim of up to `size` jobs (nil when it failed: the next wake-up tries again).
    private func claim(_ size: Int) async -> [ClaimedJob]? {
        let started = ContinuousClock.now
        let claimed: [ClaimedJob]
        do {
            claimed = try await store.claim(queues: configuration.queues, limit: size, lease: configuration.lease, logger: logger)
        } catch {
            logger.error("claim failed; retrying at the next wake-up", metadata: ["error": "\(describeDatabaseError(error))"])
            return nil
        }
        logger.debug(
            "claimed",
            metadata: ["asked": "\(size)", "got": "\(claimed.count)", "ms": "\(started.elapsed.seconds * 1000)"])
        state.scheduler.withLock { $0.claimed(claimed.count, asked: size) }
        WorkerMetrics.claimBatch(claimed.count)
        for job in claimed { WorkerMetrics.claimed(job) }
        return claimed
    }
}
