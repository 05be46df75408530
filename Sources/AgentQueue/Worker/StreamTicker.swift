import Logging
import ServiceLifecycle

/// Writes the waiting deltas of every live stream, one statement per tick (`LiveStreams`); a stream
/// the database says to stop (cancelled, taken back) stops its job.
struct StreamTicker: Service {
    let store: StreamStore
    let state: WorkerState
    let logger: Logger

    func run() async {
        let state = state
        await cancelWhenGracefulShutdown {
            await state.streams.run(store: store, logger: logger) { job, attempt in
                state.registry.stop(job, attempt: attempt, .cancelRequested)
            }
        }
    }
}
