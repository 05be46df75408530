import Foundation
import Logging
import ServiceLifecycle

/// Registers the worker (retrying until the database answers, and again after every failed
/// heartbeat: a crash restart empties the unlogged registry) and deregisters it at the end.
/// Keeps the jobs in hand: extends their leases (a heartbeat every `heartbeatInterval`, which also
/// learns of taken-back and cancelled jobs), and every `pollInterval` stops the jobs past their time
/// budget and asks for cancel requests whose NOTIFY was missed.
struct LeaseKeeper: Service {
    let store: JobStore
    let registry: JobRegistry
    let configuration: WorkerConfiguration
    let logger: Logger
    /// Called once the first registration was written (or given up on).
    var onFirstRegistration: @Sendable () -> Void = {}

    func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await heartbeats() }
                await checks()
                group.cancelAll()
            }
        }
        do {
            try await store.deregister(logger: logger)
        } catch {
            logger.warning("could not deregister", metadata: ["error": "\(describeDatabaseError(error))"])
        }
    }

    private func heartbeats() async {
        var registered = await register()
        onFirstRegistration()
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            if !registered { registered = await register() }
            let asked = registry.held
            let abandoned = registry.abandoned
            if !abandoned.isEmpty {
                logger.error(
                    "jobs stopped long ago still run (their work ignores cancellation); their leases are let go",
                    metadata: ["job_ids": "\(abandoned)"])
            }
            do {
                let answers = try await store.heartbeat(
                    held: asked, lease: configuration.lease, deadline: configuration.heartbeatDeadline, logger: logger)
                registry.apply(heartbeat: answers, asked: asked)
            } catch {
                registered = false
                logger.warning("heartbeat failed", metadata: ["error": "\(describeDatabaseError(error))"])
            }
        }
    }

    /// Announces the worker; on failure retries within a heartbeat interval (claims need no
    /// registration, so work goes on meanwhile). Returns whether it was written.
    private func register() async -> Bool {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await store.register(
                    host: ProcessInfo.processInfo.hostName, pid: Int(ProcessInfo.processInfo.processIdentifier),
                    queues: configuration.queues, concurrency: configuration.concurrency, lease: configuration.lease,
                    logger: logger)
                return true
            } catch {
                logger.warning("registering the worker failed", metadata: ["error": "\(describeDatabaseError(error))"])
                if delay > configuration.heartbeatInterval { return false }
                try? await Task.sleep(for: delay)
                delay *= 2
            }
        }
        return false
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
