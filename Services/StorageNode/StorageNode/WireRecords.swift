import Foundation
import RingProtocol
import StorageEngine

/// Conversions between the engine's records and their wire form.
extension VersionedRecord {
    var wire: WireRecord {
        WireRecord.with {
            $0.key = Data(key)
            if let value { $0.value = Data(value) } else { $0.tombstone = true }
            $0.version = version.wire
            if let fence { $0.fence = fence.wire }
        }
    }

    /// A record from the wire; throws for an empty key. A fence without a lock name
    /// counts as none (no write carries one: coordinators refuse them).
    init(wire: WireRecord) throws(StorageError) {
        try self.init(key: [UInt8](wire.key), value: wire.tombstone ? nil : [UInt8](wire.value),
                      version: Version(wire: wire.version), fence: wire.hasFence ? LockFence(wire: wire.fence) : nil)
    }
}

extension LockFence {
    var wire: WireFence {
        WireFence.with {
            $0.name = name
            $0.token = token
        }
    }

    /// A fence from the wire; `nil` when it has no lock name.
    init?(wire: WireFence) {
        guard !wire.name.isEmpty else { return nil }
        self.init(name: wire.name, token: wire.token)
    }
}

extension Version {
    var wire: WireVersion {
        WireVersion.with {
            $0.timestamp = timestamp
            $0.writer = writer
        }
    }

    init(wire: WireVersion) {
        self.init(timestamp: wire.timestamp, writer: wire.writer)
    }
}
