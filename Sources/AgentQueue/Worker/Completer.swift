import Logging
import ServiceLifecycle

/// Writes the outcomes of finished jobs in batches (`CompletionQueue`), freeing their slots once
/// written. On graceful shutdown (after the claim loop and its jobs are done) it writes what is left
/// and stops.
struct Completer: Service {
    let store: JobStore
    let state: WorkerState
    let configuration: WorkerConfiguration
    let logger: Logger

    func run() async {
        let state = state
        await withGracefulShutdownHandler {
            await state.completions.runFlusher(store: store, logger: logger, giveUpAfterClose: configuration.grace) { held in
                for job in held { state.registry.remove(job.id, attempt: job.attempt) }
                state.wake(.slotsFreed(held.count, requeued: held.contains(where: \.requeued)))
            }
        } onGracefulShutdown: {
            state.completions.close()
        }
    }
}
