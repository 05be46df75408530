import Logging
import ServiceLifecycle

/// Keeps the jobs in hand: extends their leases (a heartbeat every `heartbeatInterval`, which also
/// learns of taken-back and cancelled jobs), and every `pollInterval` stops the jobs past their time
/// budget and asks for cancel requests whose NOTIFY was missed.
struct LeaseKeeper: Service {
    let store: JobStore
    let registry: JobRegistry
    let configuration: WorkerConfiguration
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await heartbeats() }
                await checks()
                group.cancelAll()
            }
        }
    }

    private func heartbeats() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            let asked = registry.held
            do {
                let answers = try await store.heartbeat(held: asked, lease: configuration.lease, logger: logger)
                registry.apply(heartbeat: answers, asked: asked)
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(describeDatabaseError(error))"])
            }
        }
    }

    /// A cancel notification names `id`: NOTIFY is only a hint (any session can send one), so the
    /// job stops only when its row says its cancel was requested.
    func cancelNotified(_ id: Int64) async {
        guard registry.holds(id) else { return }
        do {
            if try await store.cancelRequested(among: [id], logger: logger).contains(id) { registry.stop(id, .cancelRequested) }
        } catch {
            logger.warning("checking a cancel request failed", metadata: ["job_id": "\(id)", "error": "\(describeDatabaseError(error))"])
        }
    }

    /// Time budgets, and the fallback for missed cancel notifications.
    private func checks() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.pollInterval)
            if Task.isCancelled { return }
            registry.stopOverdue()
            let held = registry.ids
            if !held.isEmpty, let ids = try? await store.cancelRequested(among: held, logger: logger) {
                for id in ids { registry.stop(id, .cancelRequested) }
            }
        }
    }
}
