import AgentQueue
import AgentQueueMockLLM
import ArgumentParser
import Hummingbird
import Logging
import ServiceLifecycle

struct MockLLMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-llm",
        abstract: "Serve the mock model over the OpenAI wire format (chat completions, streaming or not, and embeddings).",
        discussion: """
            Point a provider at it: insert into agentq.providers (name, kind, base_url) values ('local', 'openai', 'http://127.0.0.1:8089/v1');
            then use models like 'local:mock'. The prompt's [mock ...] directives script it (see the README).
            """)

    @Option(help: "Port to listen on (0: any free port, printed on start).")
    var port: Int = 8089

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Dimensions of embeddings when a request does not give \"dimensions\".")
    var embeddingDimensions: Int = 16

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "warning"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (1...4096).contains(embeddingDimensions) else { throw ValidationError("--embedding-dimensions must be 1...4096") }
    }

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { fail("unknown log level \"\(logLevel)\"") }
        LoggingBootstrap.once(level: level)
        var logger = Logger(label: "agentq.mock-llm")
        logger.logLevel = level
        let server = MockLLMServer(host: host, port: port, embeddingDimensions: embeddingDimensions, logger: logger)
        let app = server.application { port in say("mock-llm listening on http://\(host):\(port)/v1") }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            fail("mock-llm: \(error)")
        }
    }
}
