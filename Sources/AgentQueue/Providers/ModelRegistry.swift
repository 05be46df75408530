import AsyncHTTPClient
import Foundation
import Synchronization

/// The providers a worker can call, by name: `openai` (from `OPENAI_BASE_URL`, key in
/// `OPENAI_API_KEY`), models a Swift program registers in code, and the rows of `agentq.providers`
/// (loaded by the worker with `update(with:)`). The in-process `mock` provider, and `mock`-kind
/// rows, only when mock models are allowed: registered in code (`ModelRegistry.mockModels`), by
/// `agentq worker --allow-mock-models`, or by `AGENTQ_ALLOW_MOCK_MODELS=1` (README: The mock model).
public final class ModelRegistry: Sendable {
    private struct State: Sendable {
        var registered: [String: any ChatModel]
        var fromTable: [String: any ChatModel] = [:]
        /// `mock`-kind rows left out because this worker runs no mock models.
        var mockRows: Set<String> = []
        var loadedAt: ContinuousClock.Instant?
        /// `agentq.providers` changed since the last load.
        var reloadRequested = false
    }

    private let state: Mutex<State>
    /// The HTTP client OpenAI-compatible providers use (nil: only in-process models).
    public let http: HTTPClient?

    /// `models`: registered in code; by default the mock, only when `AGENTQ_ALLOW_MOCK_MODELS` allows it.
    public init(http: HTTPClient? = nil, models: [String: any ChatModel] = ModelRegistry.defaultModels()) {
        self.http = http
        state = Mutex(State(registered: models))
    }

    /// The environment setting that allows mock models (`1`, `true` or `yes`).
    public static let allowMockEnvironment = "AGENTQ_ALLOW_MOCK_MODELS"

    /// The in-process mock, registered as `mock` (a worker that should answer `mock:*` models).
    public static var mockModels: [String: any ChatModel] { ["mock": MockModel()] }

    /// Whether `environment` allows mock models.
    public static func mockAllowed(by environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        ["1", "true", "yes"].contains(environment[allowMockEnvironment]?.lowercased() ?? "")
    }

    /// The models registered by default: the mock when the environment allows it, else none.
    public static func defaultModels(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String: any ChatModel] {
        mockAllowed(by: environment) ? mockModels : [:]
    }

    /// Whether this registry runs mock models (a `MockModel` was registered).
    public var allowsMock: Bool {
        state.withLock { $0.registered.values.contains { $0 is MockModel } }
    }

    /// Adds a model in code (it wins over a table row of the same name).
    public func register(_ name: String, _ model: any ChatModel) {
        state.withLock { $0.registered[name] = model }
    }

    /// Replaces the models built from `agentq.providers` rows.
    public func update(with rows: [ProviderRecord]) {
        var models: [String: any ChatModel] = [:]
        var mockRows: Set<String> = []
        let mock = allowsMock
        for row in rows {
            switch row.kind {
            case .mock:
                // A `mock` row needs a worker that allows mock models (else its jobs fail, clearly).
                if mock { models[row.name] = MockModel() } else { mockRows.insert(row.name) }
            case .openai:
                guard let http else { continue }
                models[row.name] = OpenAIModel(http: http, endpoint: Self.endpoint(row))
            }
        }
        state.withLock {
            $0.fromTable = models; $0.mockRows = mockRows; $0.loadedAt = .now
        }
    }

    /// Asks for the providers to be read again before the next batch (`agentq.providers` changed).
    public func requestReload() {
        state.withLock { $0.reloadRequested = true }
    }

    /// Whether a reload was asked for since the last call; clears the request (one taken before a
    /// load begins: a change during the load asks again).
    public func takeReloadRequest() -> Bool {
        state.withLock { s in
            defer { s.reloadRequested = false }
            return s.reloadRequested
        }
    }

    /// Whether the table rows are older than `maxAge` (or were never loaded).
    public func isStale(maxAge: Duration) -> Bool {
        state.withLock { s in s.loadedAt.map { ContinuousClock.now - $0 > maxAge } ?? true }
    }

    /// Whether a provider of this name is known now.
    public func knows(_ name: String) -> Bool {
        state.withLock { $0.registered[name] != nil || $0.fromTable[name] != nil } || (name == "openai" && http != nil)
    }

    public func model(forProvider name: String) throws -> any ChatModel {
        let found = state.withLock { $0.registered[name] ?? $0.fromTable[name] }
        if let found { return found }
        if name == "openai", let http {
            let env = ProcessInfo.processInfo.environment
            return OpenAIModel(
                http: http,
                endpoint: .init(
                    baseURL: env["OPENAI_BASE_URL"] ?? "https://api.openai.com/v1",
                    apiKeyEnv: "OPENAI_API_KEY"))
        }
        let known = state.withLock { Set($0.registered.keys).union($0.fromTable.keys) }.union(http == nil ? [] : ["openai"])
        if name == "mock" || state.withLock({ $0.mockRows.contains(name) }) {
            throw GenerationError(
                .permanent,
                "provider \"\(name)\" is the mock model, which this worker does not run "
                    + "(start the worker with --allow-mock-models or \(Self.allowMockEnvironment)=1 to allow it)")
        }
        throw GenerationError(.permanent, "unknown provider \"\(name)\" (this worker knows: \(known.sorted().joined(separator: ", ")))")
    }

    /// A `provider:model` name split at its first colon; `what` names it in the error ("model",
    /// "embedding model").
    public static func split(_ name: String, what: String = "model") throws -> (provider: String, model: String) {
        guard let colon = name.firstIndex(of: ":") else {
            throw GenerationError(.permanent, "\(what) \"\(name)\" must be written provider:model")
        }
        return (String(name[..<colon]), String(name[name.index(after: colon)...]))
    }

    /// The provider's embedding client (`openai`-kind providers and `mock` embed).
    public func embedder(forProvider name: String) throws -> any EmbeddingModel {
        guard let embedder = try model(forProvider: name) as? any EmbeddingModel else {
            throw GenerationError(.permanent, "provider \"\(name)\" cannot compute embeddings")
        }
        return embedder
    }

    /// A row's endpoint; its options: `stream` (true), `include_usage` (true), `header_timeout_ms`
    /// (60000), `call_timeout_ms` (600000).
    static func endpoint(_ row: ProviderRecord) -> OpenAIModel.Endpoint {
        OpenAIModel.Endpoint(
            baseURL: row.baseURL ?? "https://api.openai.com/v1", apiKeyEnv: row.apiKeyEnv,
            stream: row.options["stream"]?.boolValue ?? true,
            includeUsage: row.options["include_usage"]?.boolValue ?? true,
            headerTimeout: .milliseconds(
                Limits.clamp(row.options["header_timeout_ms"]?.intValue ?? 60_000, 1...Limits.timeoutMilliseconds)),
            callTimeout: .milliseconds(Limits.clamp(row.options["call_timeout_ms"]?.intValue ?? 600_000, 1...Limits.timeoutMilliseconds)))
    }
}
