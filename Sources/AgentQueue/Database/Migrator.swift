import Foundation
import Logging
import PostgresNIO

/// Applies the ordered migrations of `sql/` (files named `NNN_name.sql`). Idempotent, and safe when
/// several processes migrate at once: they queue on an advisory lock, and each file records its
/// version in `agentq.schema_migrations` in the transaction that applies it.
public struct Migrator: Sendable {
    public struct Migration: Sendable {
        public var version: String
        public var name: String
        public var sql: String

        /// FNV-1a of the file, to notice a migration edited after it was applied (drift detection,
        /// not security; hand-written to avoid a crypto dependency for eight lines).
        public var checksum: String {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in sql.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            return String(hash, radix: 16)
        }
    }

    /// The advisory lock key migrations hold (any constant works; this one spells "agentq").
    static let lockKey: Int64 = 0x6167_656e_7471

    public var directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// The migration files, in version order.
    public func migrations() throws -> [Migration] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw AgentQueueError(.migration, "cannot read the migrations folder \(directory.path)", underlying: error)
        }
        return try files.filter { $0.hasSuffix(".sql") }.sorted().compactMap { file in
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), stem[..<underscore].allSatisfy(\.isNumber) else {
                return nil  // not a migration (for example dashboards.psql-style helpers)
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            return Migration(version: String(stem[..<underscore]), name: String(stem[stem.index(after: underscore)...]), sql: sql)
        }
    }

    /// Applies every migration not yet recorded; returns the versions it applied.
    @discardableResult
    public func migrate(_ client: PostgresClient, logger: Logger) async throws -> [String] {
        let all = try migrations()
        guard !all.isEmpty else { throw AgentQueueError(.migration, "no migrations found in \(directory.path)") }
        return try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let applied = try await appliedVersions(connection, logger: logger)
                for migration in all {
                    if let recorded = applied[migration.version], let recorded, recorded != migration.checksum {
                        throw AgentQueueError(
                            .migration,
                            """
                            migration \(migration.version)_\(migration.name).sql changed after it was applied \
                            (checksum \(recorded), file \(migration.checksum)); restore it and add a new migration instead
                            """)
                    }
                }
                var done: [String] = []
                for migration in all where applied[migration.version] == nil {
                    logger.info("applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                    do {
                        try await connection.withTransaction(logger: logger) { tx in
                            for statement in SQLScriptSplitter.split(migration.sql) {
                                try await tx.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                            }
                            try await tx.query(
                                """
                                INSERT INTO agentq.schema_migrations (version, name, checksum)
                                VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                                ON CONFLICT (version) DO UPDATE SET checksum = excluded.checksum
                                """, logger: logger)
                        }
                    } catch {
                        throw AgentQueueError(.migration, "migration \(migration.version)_\(migration.name).sql failed", underlying: error)
                    }
                    done.append(migration.version)
                }
                try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return done
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    /// Applied versions with their recorded checksums (nil when applied with psql -f).
    private func appliedVersions(_ connection: PostgresConnection, logger: Logger) async throws -> [String: String?] {
        let exists = try await connection.query(
            "SELECT to_regclass('agentq.schema_migrations') IS NOT NULL", logger: logger
        ).collect()
        guard try exists.first?.decode(Bool.self) == true else { return [:] }
        var versions: [String: String?] = [:]
        for try await (version, checksum) in try await connection.query(
            "SELECT version, checksum FROM agentq.schema_migrations", logger: logger
        ).decode((String, String?).self) {
            versions[version] = checksum
        }
        return versions
    }
}
