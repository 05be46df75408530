import Synchronization

/// Work in a task of its own whose result the caller can stop waiting for. A database round trip
/// PostgresNIO lost (a query written as its connection closed never answers) must not hold its
/// caller, and a child task would: a task group waits for all its children. So the deadline of a
/// round trip (`Database.within`) and a failed ping of the LISTEN connection `abandon` the work:
/// its waiter gets the error at once, and the work, if it is truly stuck, stays behind holding only
/// its closed connection. Cancelling the waiter cancels the work and abandons it. The structured
/// alternatives all wait for the child, hence this type.
final class Abandonable<T: Sendable>: Sendable {
    private let state = Mutex<(waiter: CheckedContinuation<T, any Error>?, result: Result<T, any Error>?)>((nil, nil))
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ work: @escaping @Sendable () async throws -> T) {
        let started = Task { [weak self] in
            let result: Result<T, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            self?.finish(result)
        }
        task.withLock { $0 = started }
    }

    /// The work's result, or the error it was abandoned with.
    var value: T {
        get async throws {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let ready = state.withLock { s -> Result<T, any Error>? in
                        if let result = s.result { return result }
                        s.waiter = continuation
                        return nil
                    }
                    if let ready { continuation.resume(with: ready) }
                }
            } onCancel: {
                abandon(CancellationError())
            }
        }
    }

    /// Stops waiting: the waiter gets `error` (unless the work already ended), the work is cancelled.
    func abandon(_ error: any Error) {
        task.withLock { $0 }?.cancel()
        finish(.failure(error))
    }

    private func finish(_ result: Result<T, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<T, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }
}
