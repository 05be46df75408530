import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// Options every command shares: where the database is, and how much to log.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "libpq URL of the database (default: $DATABASE_URL, else the embedded PostgreSQL).")
    var databaseURL: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error (default: info for workers, warning otherwise).")
    var logLevel: String?

    @Option(name: .long, help: "Log lines as text or json (one JSON object per line on stderr, with job, thread and worker ids).")
    var logFormat: LogFormat = .text

    /// The database URL: the flag, then DATABASE_URL, then the embedded database (started if needed).
    func resolve() throws -> DatabaseURL {
        if let url = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            return try DatabaseURL(url)
        }
        return try EmbeddedPostgres(layout: ProjectLayout.locate()).start()
    }

    func makeLogger(label: String = "agentq", defaultLevel: String = "warning") throws -> Logger {
        let name = logLevel ?? defaultLevel
        guard let level = Logger.Level(rawValue: name) else {
            throw ValidationError("unknown log level \"\(name)\" (trace, debug, info, notice, warning, error)")
        }
        LoggingBootstrap.once(level: level, format: logFormat)
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

/// How log lines are written.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// Bootstraps swift-log once per process (to stderr, so stdout stays for replies and tables).
enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    static func once(level: Logger.Level, format: LogFormat = .text) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                return JSONLogHandler(label: label, logLevel: level)
            }
        }
    }
}

/// Runs `body` with a running client pool, then shuts the pool down.
func withClient<T: Sendable>(
    _ url: DatabaseURL, application: String = "agentq", statementTimeout: Duration? = .seconds(30),
    maximumConnections: Int = 10, logger: Logger,
    _ body: @Sendable @escaping (PostgresClient) async throws -> T
) async throws -> T {
    try await PostgresClient.withRunning(
        url.clientConfiguration(
            applicationName: application, statementTimeout: statementTimeout,
            maximumConnections: maximumConnections),
        logger: logger, body)
}

/// Prints `error` as one line on stderr and exits non-zero (the CLI's contract for bad input).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("agentq: \(message)\n".utf8))
    exit(1)
}

/// Prints a line unbuffered, so it appears in order with the logs and as it happens (also through a pipe).
func say(_ line: String) {
    printOut(line + "\n")
}

/// Writes to stdout unbuffered. A reader that went away (`agentq chat | head`) ends the program
/// quietly, as a closed pipe does for any Unix tool: FileHandle.write would trap on EPIPE, so this
/// writes with write(2), SIGPIPE ignored.
func printOut(_ text: String) {
    _ = ignoreBrokenPipes
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            exit(errno == EPIPE ? 0 : 1)
        }
        bytes = bytes.dropFirst(written)
    }
}

/// SIGPIPE ignored once, so a closed stdout is an EPIPE error instead of a signal.
private let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

/// The single value of a one-row query.
func scalar<T: PostgresDecodable & Sendable>(_ client: PostgresClient, _ query: PostgresQuery, as: T.Type, logger: Logger) async throws -> T
{
    for try await value in try await client.query(query, logger: logger).decode(T.self) { return value }
    throw AgentQueueError(.notFound, "query returned no row")
}
