import AgentQueue
import Foundation
import Logging
import PostgresNIO
import Synchronization

extension TurnsBench {
    /// How the bench's clients wait for their jobs' `job.succeeded`.
    enum Follow: String, CaseIterable, Sendable {
        /// Each client LISTENs on its thread's channel on its own connection (one listening backend
        /// per client, as a client library that follows one thread would).
        case own
        /// One connection LISTENs on every client's thread channel and hands each job's end to the
        /// client that waits for it (as a web server that follows many threads would).
        case shared
    }

    /// The `shared` follower: one connection, a LISTEN per thread channel, and the clients' waits.
    final class SharedFollower: Sendable {
        private struct State {
            var waiting: [Int64: CheckedContinuation<ThreadEvent, any Error>] = [:]
            /// Ends that came before their client asked (the event can beat `generate`'s answer).
            var ended: [Int64: ThreadEvent] = [:]
            var failure: (any Error)?
        }

        private let state = Mutex(State())

        /// The job's final event (`job.succeeded`, `job.failed` or `job.cancelled`).
        func end(of job: Int64) async throws -> ThreadEvent {
            try await withCheckedThrowingContinuation { continuation in
                let resume: Result<ThreadEvent, any Error>? = state.withLock { s in
                    if let failure = s.failure { return .failure(failure) }
                    if let event = s.ended.removeValue(forKey: job) { return .success(event) }
                    s.waiting[job] = continuation
                    return nil
                }
                if let resume { continuation.resume(with: resume) }
            }
        }

        private func deliver(_ event: ThreadEvent, job: Int64) {
            let waiter = state.withLock { s -> CheckedContinuation<ThreadEvent, any Error>? in
                if let waiter = s.waiting.removeValue(forKey: job) { return waiter }
                s.ended[job] = event
                return nil
            }
            waiter?.resume(returning: event)
        }

        /// Ends every wait, now and later, with `error`.
        func fail(_ error: any Error) {
            let waiters = state.withLock { s in
                s.failure = s.failure ?? error
                defer { s.waiting = [:] }
                return Array(s.waiting.values)
            }
            for waiter in waiters { waiter.resume(throwing: error) }
        }

        /// LISTENs on `channels` on `connection` and delivers the jobs' ends until cancelled; `ready`
        /// is called once every LISTEN is in place.
        func run(on connection: PostgresConnection, channels: [String], ready: @escaping @Sendable () -> Void) async throws {
            let listening = ListenCount()
            let total = channels.count
            try await withThrowingTaskGroup(of: Void.self) { group in
                for channel in channels {
                    group.addTask { [self] in
                        try await connection.listen(on: channel) { notifications in
                            if listening.increment() == total { ready() }
                            for try await note in notifications {
                                guard note.payload.contains("\"job."), let event = ThreadEvent.parse(note.payload), event.isJobFinal,
                                    let job = event.jobID
                                else { continue }
                                self.deliver(event, job: job)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// How many of the follower's LISTENs are in place.
    final class ListenCount: Sendable {
        private let count = Mutex(0)

        /// Counts one more; returns the new count.
        func increment() -> Int {
            count.withLock {
                $0 += 1; return $0
            }
        }
    }
}
