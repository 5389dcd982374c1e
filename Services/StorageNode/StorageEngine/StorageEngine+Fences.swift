/// Fenced writes: a lock's fencing token remembered per key and lock name. Fenced records
/// are checked against these and remember their token in ``apply(_:)``; migration
/// carries the tokens of the keys it moves (``fences(forKeys:)``, ``remember(_:)``).
extension StorageEngine {
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
            for fence in fences where !fence.name.isEmpty && !fence.key.isEmpty {
                try rememberFence(key: fence.key, fence: LockFence(name: fence.name, token: fence.token), connection: connection)
            }
        }
    }

    /// The highest token seen for lock `name` on `key`, if any.
    public func fenceToken(key: [UInt8], name: String) throws(StorageError) -> UInt64? {
        try database.access { connection throws(StorageError) in try fenceToken(key: key, name: name, connection: connection) }
    }

    /// Raises the remembered token of `fence.name` on `key` to `fence.token` (keeps the higher).
    func rememberFence(key: [UInt8], fence: LockFence, connection: OpaquePointer) throws(StorageError) {
        let upsert = try database.statement(StorageSchema.upsertFence, connection: connection)
        try withBytes(key) { bytes throws(StorageError) in
            try upsert.bind(bytes, at: 1)
            try upsert.bind(fence.name, at: 2)
            try upsert.bind(Int64(bitPattern: fence.token), at: 3)
            try upsert.run()
        }
    }

    func fenceToken(key: [UInt8], name: String, connection: OpaquePointer) throws(StorageError) -> UInt64? {
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
