import Logging
import ServiceLifecycle

/// The worker's housekeeping: prunes finished jobs and old deltas (one worker at a time does the
/// work), reloads `agentq.providers`, and samples queue depths for the metrics when they are on.
struct Maintenance: Service {
    let store: JobStore
    let models: ModelRegistry
    let configuration: WorkerConfiguration
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await every(configuration.pruneInterval) { await prune() } }
                group.addTask { await every(configuration.providerReloadInterval, first: .zero) { await reloadProviders() } }
                if let interval = configuration.queueDepthInterval {
                    group.addTask { await every(interval, first: .zero) { await sampleQueueDepths() } }
                }
            }
        }
    }

    /// Runs `work` after `first` (one interval by default), then once per interval, until cancelled.
    private func every(_ interval: Duration, first: Duration? = nil, _ work: () async -> Void) async {
        var wait = first ?? interval
        while !Task.isCancelled {
            try? await Task.sleep(for: wait)
            if Task.isCancelled { return }
            await work()
            wait = interval
        }
    }

    private func prune() async {
        do {
            let pruned = try await store.prune(batch: 5000, logger: logger)
            logger.debug("pruned", metadata: ["deleted": "\(pruned)"])
        } catch {
            logger.warning("prune failed", metadata: ["error": "\(describeDatabaseError(error))"])
        }
    }

    private func reloadProviders() async {
        do {
            models.update(with: try await store.providers(logger: logger))
        } catch {
            logger.warning("loading providers failed", metadata: ["error": "\(describeDatabaseError(error))"])
        }
    }

    private func sampleQueueDepths() async {
        do {
            let depths = try await store.queueDepths(configuration.queues, logger: logger)
            for queue in configuration.queues { WorkerMetrics.queueDepth(queue, depths[queue] ?? 0) }
        } catch {
            logger.debug("sampling queue depth failed", metadata: ["error": "\(describeDatabaseError(error))"])
        }
    }
}
