// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "AgentQueue",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AgentQueue", targets: ["AgentQueue"]),
        .executable(name: "agentq", targets: ["agentq"])
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1")
    ],
    targets: [
        .target(
            name: "AgentQueue",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics")
            ]
        ),
        // The OpenAI-compatible mock model server (`agentq mock-llm`), kept apart so the library does
        // not carry an HTTP server.
        .target(
            name: "AgentQueueMockLLM",
            dependencies: [
                "AgentQueue",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log")
            ]
        ),
        .executableTarget(
            name: "agentq",
            dependencies: [
                "AgentQueue",
                "AgentQueueMockLLM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log")
            ]
        ),
        // A worker with a tool written in Swift (README: Tools).
        .executableTarget(
            name: "agentq-example-tools",
            dependencies: [
                "AgentQueue",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio")
            ],
            path: "Examples/SwiftToolWorker"
        ),
        .testTarget(
            name: "AgentQueueTests",
            dependencies: ["AgentQueue", .product(name: "AsyncHTTPClient", package: "async-http-client")]
        )
    ],
    swiftLanguageModes: [.v6]
)
