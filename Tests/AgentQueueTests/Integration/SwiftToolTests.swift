import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// A tool written in Swift, run by a worker in this process: typed arguments, checked against the
/// schema first, with the call's context.
@Suite struct SwiftToolTests {
    struct Args: Decodable { var celsius: Double }
    struct Out: Encodable { var fahrenheit: Double; var job: Int64; var user: String? }

    @Test func aSwiftToolRunsWithTypedArgumentsAndContext() async throws {
        try await TestDatabase.with("tools_swift") { client, _ in
            let convert = SwiftTool(
                name: "convert", description: "C to F",
                parameters: .object([
                    "type": .string("object"), "required": .array([.string("celsius")]),
                    "properties": .object(["celsius": .object(["type": .string("number")])])
                ]),
                arguments: Args.self
            ) { args, context in
                Out(fahrenheit: args.celsius * 9 / 5 + 32, job: context.jobID, user: context.userID)
            }
            let failing = SwiftTool(
                name: "explode", description: "throws", parameters: .object(["type": .string("object")]),
                arguments: [String: Int].self
            ) { (_: [String: Int], _) -> Int in
                throw TestFailure("the tool blew up")
            }
            var configuration = WorkerConfiguration()
            configuration.pollInterval = .milliseconds(100)
            let worker = WorkerService(client: client, configuration: configuration, tools: [convert, failing], logger: TestDatabase.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                let thread: UUID = try await client.scalar("SELECT agentq.create_thread('u7')")
                let job: Int64 = try await client.scalar(
                    """
                    SELECT agentq.generate(\(thread), '[mock tool=convert args=''{"celsius": 100}''] hot?', options => '{"tools": ["convert"]}')
                    """)
                let bad: Int64 = try await client.scalar(
                    """
                    SELECT agentq.generate(null, '[mock tool=convert args=''{"celsius": "hot"}''] x', options => '{"tools": ["convert"]}')
                    """)
                let boom: Int64 = try await client.scalar(
                    """
                    SELECT agentq.generate(null, '[mock tool=explode] x', options => '{"tools": ["explode"]}')
                    """)
                try await eventually(timeout: .seconds(30), "jobs done") {
                    try await client.scalar("SELECT count(*)::int FROM agentq.jobs WHERE status = 'succeeded'") == 3
                }
                let result: String = try await client.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(job)")
                #expect(
                    try JSONValue.parse(result) == .object(["fahrenheit": .number(212), "job": .number(Double(job)), "user": .string("u7")])
                )
                let badText: String = try await client.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(bad)")
                #expect(badText.contains("invalid arguments: $.celsius must be number"))
                let boomText: String = try await client.scalar("SELECT result::text FROM agentq.tool_calls WHERE job_id = \(boom)")
                #expect(boomText.contains("the tool blew up"))
                group.cancelAll()
            }
        }
    }
}
