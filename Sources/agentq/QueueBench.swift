struct QueueBench: AsyncParsableCommand { static let configuration = CommandConfiguration(commandName: "queue"); func run() async throws {} }
import ArgumentParser
