import PostgresNIO

/// What a worker knows of its database from its own round trips, and what its watchdog should do
/// next (pure: the instants are passed in; `Database` performs the actions).
///
/// - The database is unreachable from the first failed round trip (connection lost, refused, no
///   answer by the deadline, the server shutting down or starting up) until the next one succeeds.
///   SQL errors the server answered with count as reachable.
/// - Unreachable for `probeAfter`: try a direct connection, outside the pool.
/// - A direct connection worked but the pool has not served a round trip for `replaceAfter` since:
///   the pool is stuck (its reconnect backoff grows to a minute, and a stuck pool was seen to never
///   try again), so replace it, at most once per `replacementGap`.
public struct DatabaseHealth: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        case none
        case probeDirect
        case replacePool
    }

    public var probeAfter: Duration = .seconds(1)
    public var replaceAfter: Duration = .seconds(1)
    public var replacementGap: Duration = .seconds(5)

    public private(set) var failingSince: ContinuousClock.Instant?
    public private(set) var directSuccessAt: ContinuousClock.Instant?
    public private(set) var lastReplacement: ContinuousClock.Instant?
    public private(set) var replacements = 0

    public init() {}

    /// Whether the last round trip reached the server.
    public var isReachable: Bool { failingSince == nil }

    public mutating func succeeded() {
        failingSince = nil
        directSuccessAt = nil
    }

    public mutating func failed(at now: ContinuousClock.Instant) {
        if failingSince == nil { failingSince = now }
    }

    /// The result of a direct connection attempt made while unreachable.
    public mutating func directProbe(succeeded: Bool, at now: ContinuousClock.Instant) {
        guard failingSince != nil else { return }
        if !succeeded {
            directSuccessAt = nil
        } else if directSuccessAt == nil {
            directSuccessAt = now
        }
    }

    public func nextAction(at now: ContinuousClock.Instant) -> Action {
        guard let since = failingSince, now - since >= probeAfter else { return .none }
        if let direct = directSuccessAt, now - direct >= replaceAfter,
            lastReplacement.map({ now - $0 >= replacementGap }) ?? true
        {
            return .replacePool
        }
        return .probeDirect
    }

    public mutating func replaced(at now: ContinuousClock.Instant) {
        lastReplacement = now
        replacements += 1
        directSuccessAt = nil
    }

    /// Whether an error means the server was not reached (as opposed to an SQL error it answered,
    /// or a row that did not decode).
    public static func isConnectionFailure(_ error: any Error) -> Bool {
        switch error {
        case is CancellationError, is PostgresDecodingError: return false
        case let e as AgentQueueError:
            if e.code == .databaseUnavailable { return true }
            return e.underlying.map(isConnectionFailure) ?? false
        case let e as PostgresTransactionError:
            return [e.beginError, e.closureError, e.commitError, e.rollbackError].contains { $0.map(isConnectionFailure) ?? false }
        case let e as PSQLError:
            guard let state = e.serverInfo?[.sqlState] else { return true }
            // 08: connection exceptions; 57P01-57P03: shutting down, crash recovery, starting up.
            return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
        default:
            return true  // the pool's own errors (circuit breaker, shut down) and anything unknown
        }
    }
}
