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
        }
    }

    /// A record from the wire; throws for an empty key.
    init(wire: WireRecord) throws(StorageError) {
        try self.init(key: [UInt8](wire.key), value: wire.tombstone ? nil : [UInt8](wire.value),
                      version: Version(wire: wire.version))
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
