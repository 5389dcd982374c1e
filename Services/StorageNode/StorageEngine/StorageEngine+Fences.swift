/// Fenced writes: a lock's fencing token remembered per key and lock name.
extension StorageEngine {
    /// What a fenced write came to.
    public enum FenceOutcome: Equatable, Sendable {
        /// The token was at least the highest seen; the record was merged.
        case accepted(ApplyResult)
        /// A higher token for this lock name was seen on this key; nothing was written.
        case refused(highest: UInt64)
    }

    /// Merges `record` only if `token` is at least the highest token seen for
    /// lock `name` on its key, and remembers `token`; one transaction, durable
    /// as ``syncMode`` promises when it returns.
    public func applyFenced(_ record: VersionedRecord, name: String, token: UInt64) throws(StorageError) -> FenceOutcome {
        guard !name.isEmpty else { throw StorageError.invalidArgument.with(message: "a fence needs a lock name") }
        return try database.transaction { connection throws(StorageError) in
            if let highest = try fenceToken(key: record.key, name: name, connection: connection), highest > token {
                return .refused(highest: highest)
            }
            let upsertFence = try database.statement(StorageSchema.upsertFence, connection: connection)
            try withBytes(record.key) { key throws(StorageError) in
                try upsertFence.bind(key, at: 1)
                try upsertFence.bind(name, at: 2)
                try upsertFence.bind(Int64(bitPattern: token), at: 3)
                try upsertFence.run()
            }
            let upsert = try database.statement(StorageSchema.upsertRecord, connection: connection)
            try upsert.execute(binding: record, from: 1)
            if upsert.changes == 0 {
                let select = try database.statement(StorageSchema.selectVersion, connection: connection)
                let stored = try select.queryKey(position: record.position, key: record.key) { () throws(StorageError) in
                    try select.version(at: 0)
                }
                return .accepted(.superseded(stored: stored ?? record.version))
            }
            return .accepted(.applied)
        }
    }

    /// One remembered token: the highest seen for lock `name` on `key`.
    public struct Fence: Equatable, Sendable {
        public let key: [UInt8]
        public let name: String
        public let token: UInt64

        public init(key: [UInt8], name: String, token: UInt64) {
            self.key = key
            self.name = name
            self.token = token
        }
    }

    /// Every token remembered for any of `keys` (what migration carries along).
    public func fences(forKeys keys: [[UInt8]]) throws(StorageError) -> [Fence] {
        try database.access { connection throws(StorageError) in
            let select = try database.statement(StorageSchema.selectKeyFences, connection: connection)
            var fences: [Fence] = []
            for key in keys {
                defer { select.reset() }
                try withBytes(key) { bytes throws(StorageError) in
                    try select.bind(bytes, at: 1)
                    while try select.step() {
                        guard let name = select.text(0) else { continue }
                        fences.append(Fence(key: key, name: name, token: UInt64(bitPattern: select.int64(1))))
                    }
                }
            }
            return fences
        }
    }

    /// Remembers tokens (keeping the higher of stored and given), in one transaction.
    public func remember(_ fences: [Fence]) throws(StorageError) {
        guard !fences.isEmpty else { return }
        try database.transaction { connection throws(StorageError) in
            let upsert = try database.statement(StorageSchema.upsertFence, connection: connection)
            for fence in fences where !fence.name.isEmpty && !fence.key.isEmpty {
                try withBytes(fence.key) { key throws(StorageError) in
                    try upsert.bind(key, at: 1)
                    try upsert.bind(fence.name, at: 2)
                    try upsert.bind(Int64(bitPattern: fence.token), at: 3)
                    try upsert.run()
                }
            }
        }
    }

    /// The highest token seen for lock `name` on `key`, if any.
    public func fenceToken(key: [UInt8], name: String) throws(StorageError) -> UInt64? {
        try database.access { connection throws(StorageError) in try fenceToken(key: key, name: name, connection: connection) }
    }

    private func fenceToken(key: [UInt8], name: String, connection: OpaquePointer) throws(StorageError) -> UInt64? {
        let select = try database.statement(StorageSchema.selectFence, connection: connection)
        defer { select.reset() }
        return try withBytes(key) { bytes throws(StorageError) in
            try select.bind(bytes, at: 1)
            try select.bind(name, at: 2)
            guard try select.step() else { return nil }
            return UInt64(bitPattern: select.int64(0))
        }
    }
}
