// A worker with a tool written in Swift. Build and run it beside (or instead of) `agentq worker`:
//
//   swift run agentq-example-tools            # DATABASE_URL names the database; default: the embedded one
//
// then, from psql, give an agent the tool and ask:
//
//   update agentq.agents set tools = '{convert_temperature}' where name = 'default';
//   select agentq.generate(null, 'How warm is 21 C? [mock tool=convert_temperature args=''{"celsius": 21}'']');
//
// Jobs whose tool set names `convert_temperature` need a worker that registered it: route them to
// this worker's queue (`options => '{"queue": "swift-tools"}'` and `--queues`-style configuration
// below) when other workers run without it.
import AgentQueue
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

struct Conversion: Decodable {
    var celsius: Double
}

struct Converted: Encodable {
    var fahrenheit: Double
    var kelvin: Double
    var askedBy: String?
}

let convert = SwiftTool(
    name: "convert_temperature",
    description: "Converts a temperature in degrees Celsius to Fahrenheit and Kelvin.",
    parameters: .object([
        "type": .string("object"),
        "properties": .object(["celsius": .object(["type": .string("number"), "minimum": .number(-273.15)])]),
        "required": .array([.string("celsius")]),
        "additionalProperties": .bool(false)
    ]),
    arguments: Conversion.self
) { args, context in
    Converted(fahrenheit: args.celsius * 9 / 5 + 32, kelvin: args.celsius + 273.15, askedBy: context.userID)
}

LoggingSystem.bootstrap(StreamLogHandler.standardError)
var logger = Logger(label: "agentq-example-tools")
logger.logLevel = .info
let url =
    try ProcessInfo.processInfo.environment["DATABASE_URL"].map { try DatabaseURL($0) }
    ?? EmbeddedPostgres(layout: ProjectLayout.locate()).start()
let client = PostgresClient(
    configuration: url.clientConfiguration(applicationName: "agentq-example-tools", statementTimeout: .seconds(30)),
    backgroundLogger: logger)
var configuration = WorkerConfiguration()
configuration.queues = ["default", "swift-tools"]
// The mock models (the default agent's) are passed in explicitly: a worker runs them only when told.
let worker = WorkerService(
    client: client, configuration: configuration, models: ModelRegistry.mockModels, tools: [convert], logger: logger)
let group = ServiceGroup(
    configuration: .init(
        services: [.init(service: client), .init(service: worker)],
        gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
try await group.run()
