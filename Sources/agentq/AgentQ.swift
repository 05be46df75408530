import ArgumentParser

@main
struct AgentQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentq",
        abstract: "AgentQueue: AI agents on PostgreSQL. Producers enqueue work from SQL; agentq workers run it.",
        discussion: """
            Quick start (no DATABASE_URL needed: an embedded PostgreSQL 18 + pgvector is provisioned in .agentq/):
              agentq up                      start the database, migrate, and run a worker
              agentq send "Hello there"      in another terminal: enqueue a prompt and print the reply
              agentq db psql                 open psql on the database (see the README's tour)

            Every command takes --database-url (default: $DATABASE_URL, else the embedded database).
            """,
        subcommands: [
            UpCommand.self, MigrateCommand.self, WorkerCommand.self, SendCommand.self, StatusCommand.self,
            DBCommand.self, BenchCommand.self, MockLLMCommand.self, ListenCommand.self, ChatCommand.self, TopCommand.self
        ]
    )
}
