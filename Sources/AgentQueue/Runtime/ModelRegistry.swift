/// The providers a worker can call, by name. `mock` is built in; others are added by the program.
public struct ModelRegistry: Sendable {
    private var providers: [String: any ChatModel]

    public init(providers: [String: any ChatModel] = ["mock": MockModel()]) {
        self.providers = providers
    }

    public mutating func register(_ name: String, _ model: any ChatModel) {
        providers[name] = model
    }

    public func model(forProvider name: String) throws -> any ChatModel {
        guard let model = providers[name] else {
            throw GenerationError(.permanent, "unknown provider \"\(name)\" (this worker knows: \(providers.keys.sorted().joined(separator: ", ")))")
        }
        return model
    }
}
