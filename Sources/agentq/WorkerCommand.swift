import AgentQueue
import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Worker flags, shared by `worker` and `up`.
struct WorkerOptions: ParsableArguments {
    @Option(help: "Jobs in hand at most.")
    var concurrency: Int = 32

    @Option(help: "Queues to claim from, comma-separated, in order of preference.")
    var queues: String = "default"

    @Option(help: "Name of this worker (default: host-pid-random).")
    var id: String?

    @Option(help: "Seconds running jobs get to finish on SIGTERM/SIGINT before they are handed back.")
    var grace: Double = 30

    @Option(help: "Seconds a claimed job stays ours without a heartbeat (heartbeats run every third of it).")
    var lease: Double = 30

    @Option(help: "Milliseconds between fallback polls when no NOTIFY arrives.")
    var pollMs: Int = 1000

    @Option(help: "Milliseconds of the first retry delay (doubles per attempt, with jitter).")
    var retryBaseMs: Int = 1000

    @Option(help: "Seconds of the longest retry delay.")
    var retryCap: Double = 300

    @Option(help: "Seconds every SQL statement may run before the server cancels it.")
    var statementTimeout: Double = 30

    @Option(help: "Milliseconds between writes of streamed deltas (all live streams in one statement; sooner at a sentence end).")
    var throttleMs: Int = 100

    @Option(help: "Seconds to connect to a model's server.")
    var llmConnectTimeout: Double = 10

    @Option(help: "Seconds a model's server may stay silent mid-call (idle read timeout).")
    var llmIdleTimeout: Double = 60

    @Option(help: "Serve Prometheus metrics on this port at /metrics (0: any free port, logged at start; default: off).")
    var metricsPort: Int?

    @Option(help: "Address the metrics server listens on.")
    var metricsHost: String = "0.0.0.0"

    @Flag(help: "Run the in-process mock models (mock:*, mock-kind providers); also AGENTQ_ALLOW_MOCK_MODELS=1. Off: their jobs fail.")
    var allowMockModels = false

    func validate() throws {
        guard concurrency > 0 else { throw ValidationError("--concurrency must be at least 1") }
        guard grace >= 0, lease >= 1, pollMs >= 10, retryBaseMs >= 0, statementTimeout > 0 else {
            throw ValidationError("--grace must be >= 0, --lease >= 1, --poll-ms >= 10, --retry-base-ms >= 0, --statement-timeout > 0")
        }
        guard throttleMs >= 10, llmConnectTimeout > 0, llmIdleTimeout > 0 else {
            throw ValidationError("--throttle-ms must be >= 10, --llm-connect-timeout and --llm-idle-timeout > 0")
        }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be 0...65535")
        }
        guard queues.split(separator: ",").allSatisfy({ $0.range(of: "^[A-Za-z0-9_.-]{1,64}$", options: .regularExpression) != nil }) else {
            throw ValidationError("--queues must be comma-separated names of letters, digits, _ . -")
        }
    }

    var configuration: WorkerConfiguration {
        var c = WorkerConfiguration(id: id)
        c.queues = queues.split(separator: ",").map(String.init)
        c.concurrency = concurrency
        c.grace = .milliseconds(Int(grace * 1000))
        c.lease = .milliseconds(Int(lease * 1000))
        c.pollInterval = .milliseconds(pollMs)
        c.backoff = Backoff(base: .milliseconds(retryBaseMs), cap: .milliseconds(Int(retryCap * 1000)))
        c.streamThrottle = .milliseconds(throttleMs)
        c.llmConnectTimeout = .milliseconds(Int(llmConnectTimeout * 1000))
        c.llmIdleTimeout = .milliseconds(Int(llmIdleTimeout * 1000))
        c.statementTimeout = .milliseconds(Int(statementTimeout * 1000))
        if metricsPort != nil { c.queueDepthInterval = .seconds(5) }
        return c
    }

    /// Runs a worker until SIGTERM/SIGINT.
    /// `allowMock`: run the mock models even without `--allow-mock-models` (`up` on the embedded database).
    func runWorker(url: DatabaseURL, logger: Logger, allowMock: Bool = false) async throws {
        let config = configuration
        let database = Database(
            connector: .init(
                pool: url.clientConfiguration(
                    applicationName: "agentq-worker", statementTimeout: config.statementTimeout, maximumConnections: 8),
                direct: try url.connectionConfiguration(applicationName: "agentq-worker-probe")),
            deadline: config.statementDeadline, logger: logger)
        let mock = allowMockModels || allowMock
        let worker = WorkerService(database: database, configuration: config, models: mock ? ModelRegistry.mockModels : [:], logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: worker)]
        if let metricsPort {
            let server = MetricsServer(registry: MetricsServer.bootstrap(), host: metricsHost, port: metricsPort)
            // Services stop in reverse order: the worker first, then metrics (scrapable through the grace period).
            services.insert(.init(service: server.application(logger: logger, reachable: { database.isReachable })), at: 0)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one worker process: claim jobs, run them, write results. Run as many as you like, anywhere.",
        discussion: "SIGTERM or SIGINT stops claiming, lets running jobs finish within --grace, and hands the rest back.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var worker: WorkerOptions

    func run() async throws {
        let logger = try database.makeLogger(defaultLevel: "info")
        do {
            try await worker.runWorker(url: database.resolve(), logger: logger)
        } catch {
            fail(describeDatabaseError(error))
        }
    }
}
