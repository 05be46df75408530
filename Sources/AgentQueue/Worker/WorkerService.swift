import AsyncHTTPClient
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// One worker process: claims jobs in batches sized to its free slots, runs them, extends their
/// leases, and finishes them in batches. A `Service` whose `run()` runs the worker's own services in
/// one `ServiceGroup`, started in this order and stopped in reverse on graceful shutdown:
/// maintenance, the stream ticker, the completer, the lease keeper, the job listener, the claim loop.
/// So on SIGTERM the claim loop stops claiming and gives running jobs `grace` to finish (then hands
/// the rest back) while leases, cancels, deltas and completions still flow; then the rest stop.
/// The database (`Database`: deadlines, reachability, pool replacement) starts first and stops last.
public struct WorkerService: Service {
    public let database: Database
    public let configuration: WorkerConfiguration
    public let logger: Logger
    /// The model providers: registered in code, `openai`, and the `agentq.providers` rows.
    public let models: ModelRegistry
    /// Tools registered in code, by name (they win over `agentq.tools` rows of the same name).
    public let swiftTools: [String: SwiftTool]
    /// The worker's HTTP client for model calls and HTTP tools (shut down when `run()` ends).
    private let http: HTTPClient

    /// `models`: providers registered in code; the worker adds `openai` and the `agentq.providers` rows.
    /// `tools`: Swift tools this worker runs for any agent, thread or job whose tool set names them.
    public init(
        database: Database, configuration: WorkerConfiguration, models: [String: any ChatModel] = [:],
        tools: [SwiftTool] = [], logger: Logger
    ) {
        self.database = database
        self.configuration = configuration
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: .init(configuration.llmConnectTimeout), read: .init(configuration.llmIdleTimeout))
        // Never follow redirects: an allowed HTTP tool host could send the call to one not allowed,
        // and model endpoints do not redirect.
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.concurrency))
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        self.models = ModelRegistry(http: http)
        for (name, model) in models { self.models.register(name, model) }
        swiftTools = Dictionary(tools.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        var logger = logger
        logger[metadataKey: "worker_id"] = "\(configuration.id)"
        self.logger = logger
    }

    /// Over a pool the caller runs (it is never replaced; statements still get deadlines).
    public init(
        client: PostgresClient, configuration: WorkerConfiguration, models: [String: any ChatModel] = [:],
        tools: [SwiftTool] = [], logger: Logger
    ) {
        self.init(
            database: Database(client: client, deadline: configuration.statementDeadline, logger: logger),
            configuration: configuration, models: models, tools: tools, logger: logger)
    }

    public func run() async throws {
        let store = JobStore(database: database, workerID: configuration.id)
        logger.info(
            "worker started",
            metadata: [
                "queues": "\(configuration.queues.joined(separator: ","))",
                "concurrency": "\(configuration.concurrency)"
            ])
        let group = ServiceGroup(configuration: .init(services: [database] + services(store: store), logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("worker stopped on an error", metadata: ["error": "\(error)"])
        }
        logger.debug("worker services stopped; closing the HTTP client")
        try? await http.shutdown()
        logger.info("worker stopped")
    }

    /// The worker's services, in start order (they stop in reverse).
    private func services(store: JobStore) -> [any Service] {
        let state = WorkerState(configuration: configuration)
        let policy = OutcomePolicy(backoff: configuration.backoff)
        let streamStore = StreamStore(database: database, workerID: configuration.id)
        let memory = MemoryStore(database: database, workerID: configuration.id)
        let catalog = CatalogCache()
        let toolbox = Toolbox(
            store: ToolStore(database: database, workerID: configuration.id),
            caller: ToolCaller(http: http, allowedHosts: configuration.httpToolHosts), swiftTools: swiftTools, catalog: catalog)
        let generator = Generator(models: models, policy: policy, toolbox: toolbox, memory: memory)
        let dispatcher = JobDispatcher(
            generate: GenerateHandler(
                generator: generator, store: store, streamStore: streamStore, streams: state.streams,
                defaultRecentMessages: configuration.recentMessages),
            embed: EmbedHandler(runner: EmbedRunner(models: models, store: memory, policy: policy)),
            state: state, policy: policy, logger: logger)
        var keeper = LeaseKeeper(store: store, registry: state.registry, configuration: configuration, logger: logger)
        keeper.onFirstRegistration = { state.registered = true }
        let leaseKeeper = keeper
        return [
            Maintenance(store: store, models: models, configuration: configuration, logger: logger),
            StreamTicker(store: streamStore, state: state, logger: logger),
            Completer(store: store, state: state, configuration: configuration, logger: logger),
            leaseKeeper,
            JobListener(
                database: database, logger: logger, onWake: { state.wake(.wake) },
                onCatalogChange: { [models] in
                    catalog.invalidate()
                    models.requestReload()
                },
                onCancel: { await leaseKeeper.cancelNotified($0) }),
            ClaimLoop(store: store, dispatcher: dispatcher, state: state, configuration: configuration, logger: logger)
        ]
    }
}
