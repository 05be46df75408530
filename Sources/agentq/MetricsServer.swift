import Hummingbird
import Logging
import Metrics
import Prometheus

/// Serves the process's metrics in the Prometheus text format at `GET /metrics` (and `GET /health`
/// for liveness probes). `bootstrap()` points swift-metrics at the registry, once per process.
struct MetricsServer {
    let registry: PrometheusCollectorRegistry
    let host: String
    let port: Int

    /// Makes the registry the process's metrics backend; histograms get buckets sized to what they time.
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "agentq_job_duration_seconds": Self.secondsBuckets,
            "agentq_llm_call_duration_seconds": Self.secondsBuckets
        ]
        factory.valueHistogramBuckets = ["agentq_claim_batch_size": [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// From 5 ms (an instant mock reply) to 10 minutes (a job's default time budget).
    private static let secondsBuckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
        .map { .milliseconds(Int($0 * 1000)) }

    /// The HTTP server, a `Service` to run in the worker's service group.
    /// `reachable` answers whether the worker's last database round trip reached the server:
    /// `/health` is 503 while it does not.
    func application(logger: Logger, reachable: @escaping @Sendable () -> Bool = { true }) -> some ApplicationProtocol {
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            let body = registry.emitToBuffer()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("health") { _, _ -> Response in
            let ok = reachable()
            return Response(
                status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: ok ? "ok\n" : "database unreachable\n")))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "agentq-metrics"),
            onServerRunning: { channel in
                logger.info("metrics served", metadata: ["url": "http://\(host):\(channel.localAddress?.port ?? port)/metrics"])
            },
            logger: logger)
    }
}
