import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks on the embedded database (figures and method in BENCHMARKS.md).",
        subcommands: [QueueBench.self, StreamBench.self, LatencyBench.self, TurnsBench.self, SearchBench.self, SoakBench.self])
}
