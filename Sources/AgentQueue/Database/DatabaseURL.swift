import Foundation
import NIOSSL
import PostgresNIO

/// A libpq-style URL (`postgresql://user:pass@host:port/db?sslmode=...&host=/socket/dir`) turned into
/// a PostgresNIO client configuration.
public struct DatabaseURL: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var unixSocketDirectory: String?
    public var username: String
    public var password: String?
    public var database: String
    public var sslMode: String

    public init(_ string: String) throws {
        guard let url = URLComponents(string: string), let scheme = url.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw AgentQueueError(
                .configuration, "DATABASE_URL must look like postgresql://user@host:port/database, got \"\(Self.redacted(string))\"")
        }
        let query = Dictionary((url.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, b in b })
        self.host = url.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        self.port = url.port ?? Int(query["port"] ?? "") ?? 5432
        self.unixSocketDirectory = query["host"].flatMap { $0.hasPrefix("/") ? $0 : nil }
        self.username = url.user.flatMap { $0.removingPercentEncoding } ?? query["user"] ?? "postgres"
        self.password = url.password.flatMap { $0.removingPercentEncoding } ?? query["password"]
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        self.database = path.isEmpty ? (query["dbname"] ?? username) : path
        let local = host == "127.0.0.1" || host == "localhost" || host == "::1" || unixSocketDirectory != nil
        self.sslMode = query["sslmode"] ?? (local ? "disable" : "prefer")
        guard ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(sslMode) else {
            throw AgentQueueError(.configuration, "unknown sslmode \"\(sslMode)\" in DATABASE_URL")
        }
    }

    /// A connection string as it may be shown in an error: any password (`user:password@`, or a
    /// `password=` parameter of a URL query or a key=value string) replaced by `***`.
    static func redacted(_ string: String) -> String {
        var s = string.replacingOccurrences(
            of: #"(?i)(password\s*=\s*)('[^']*'|[^&\s]*)"#, with: "$1***", options: .regularExpression)
        // The userinfo ends at the last "@" and starts after "//" (or at the start, when that is missing).
        if let at = s.range(of: "@", options: .backwards) {
            let head = s[..<at.lowerBound]
            let start = head.range(of: "//")?.upperBound ?? head.startIndex
            if let colon = head[start...].firstIndex(of: ":") {
                s.replaceSubrange(s.index(after: colon)..<at.lowerBound, with: "***")
            }
        }
        return s
    }

    /// The same server, another database (tests and benches use their own).
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    /// The URL without the password, for logs and banners.
    public var description: String {
        let user = username.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? username
        var s = "postgresql://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
        if let dir = unixSocketDirectory { s += "?host=\(dir)" }
        return s
    }

    /// The libpq URL with the password, for psql and pgbench.
    public var libpqURL: String {
        let user = username.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? username
        let pass = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .urlPasswordAllowed) ?? $0) } ?? ""
        var s = "postgresql://\(user)\(pass)@\(host):\(port)/\(database)"
        var params: [String] = []
        if let dir = unixSocketDirectory { params.append("host=\(dir)") }
        if sslMode != "prefer" { params.append("sslmode=\(sslMode)") }
        if !params.isEmpty { s += "?" + params.joined(separator: "&") }
        return s
    }

    private enum TLSUse { case prefer, require }

    /// TLS as `sslmode` asks for it (nil: none; `allow` is taken as none).
    private var tlsUse: TLSUse? {
        switch sslMode {
        case "disable", "allow": nil
        case "prefer": .prefer
        default: .require
        }
    }

    /// A single connection's configuration (the worker's direct reachability probe).
    public func connectionConfiguration(applicationName: String) throws -> PostgresConnection.Configuration {
        var config: PostgresConnection.Configuration
        if let dir = unixSocketDirectory {
            config = .init(unixSocketPath: "\(dir)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch tlsUse {
            case nil: tls = .disable
            case .prefer?: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require?: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            config = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        // The probe's own deadline (2 s) ends a connect that hangs: cancelling closes the channel
        // first. PostgresNIO's connect timeout firing mid-handshake can let the connection go before
        // its channel closed, which a debug build's assertion turns into a crash, so it stays later.
        config.options.connectTimeout = .seconds(10)
        config.options.additionalStartupParameters = [("application_name", applicationName)]
        return config
    }

    /// A client configuration; `applicationName` and `statementTimeout` become session settings. The
    /// statement timeout also bounds how long a session may sit idle inside a transaction
    /// (`idle_in_transaction_session_timeout`): when a connection dies mid-transaction without a
    /// reset (a silent network), the server ends that session and its locks go, instead of holding
    /// the job's rows until TCP gives up hours later (README "Reliability").
    public func clientConfiguration(
        applicationName: String, statementTimeout: Duration?,
        maximumConnections: Int = 20
    ) -> PostgresClient.Configuration {
        var config: PostgresClient.Configuration
        if let dir = unixSocketDirectory {
            config = .init(unixSocketPath: "\(dir)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch tlsUse {
            case nil: tls = .disable
            case .prefer?: tls = .prefer(.makeClientConfiguration())
            case .require?: tls = .require(.makeClientConfiguration())
            }
            config = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        var parameters = [("application_name", applicationName)]
        if let statementTimeout {
            let milliseconds =
                "\(statementTimeout.components.seconds * 1000 + statementTimeout.components.attoseconds / 1_000_000_000_000_000)ms"
            parameters += [("statement_timeout", milliseconds), ("idle_in_transaction_session_timeout", milliseconds)]
        }
        config.options.additionalStartupParameters = parameters
        config.options.maximumConnections = maximumConnections
        return config
    }
}
