import PostgresNIO

/// The SQLSTATE of a server error, looking through transaction wrappers.
public func sqlState(of error: any Error) -> String? {
    if let e = error as? PSQLError { return e.serverInfo?[.sqlState] }
    if let t = error as? PostgresTransactionError {
        return t.closureError.flatMap(sqlState(of:)) ?? t.commitError.flatMap(sqlState(of:))
    }
    if let a = error as? AgentQueueError, let u = a.underlying { return sqlState(of: u) }
    return nil
}

/// A readable one-line description of a database error: the server's message, SQLSTATE and hint
/// (PSQLError's own description is redacted on purpose).
public func describeDatabaseError(_ error: any Error) -> String {
    if let e = error as? PSQLError {
        if let info = e.serverInfo, let message = info[.message] {
            var text = "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
            if let hint = info[.hint] { text += "; hint: \(hint)" }
            return text
        }
        return String(reflecting: e)
    }
    if let t = error as? PostgresTransactionError {
        if let c = t.closureError { return describeDatabaseError(c) }
        if let c = t.commitError { return describeDatabaseError(c) }
        if let c = t.beginError { return describeDatabaseError(c) }
        return String(reflecting: t)
    }
    if let a = error as? AgentQueueError { return a.description }
    return String(describing: error)
}
