/// An error of AgentQueue itself, with a code callers can branch on and a message a person can read.
public struct AgentQueueError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as an open set of codes (new codes do not break callers).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case configuration, databaseUnavailable, migration, notFound, invalidInput, embeddedDatabase, jobFailed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A flag, URL or environment setting is wrong.
        public static let configuration = Code(.configuration)
        /// The database could not be reached.
        public static let databaseUnavailable = Code(.databaseUnavailable)
        /// A migration file is missing, malformed or failed to apply.
        public static let migration = Code(.migration)
        /// A thread, job or file that was named does not exist.
        public static let notFound = Code(.notFound)
        /// Input was refused (the message says why).
        public static let invalidInput = Code(.invalidInput)
        /// The embedded PostgreSQL could not be provisioned or started.
        public static let embeddedDatabase = Code(.embeddedDatabase)
        /// A job ended failed or cancelled.
        public static let jobFailed = Code(.jobFailed)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        guard let underlying else { return message }
        return "\(message): \(describeDatabaseError(underlying))"
    }
}
