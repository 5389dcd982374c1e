/// Where an arc scan stopped: the ring position and key of the last record returned.
///
/// Pass it back to ``StorageEngine/scan(arc:after:limit:)`` to continue after that
/// record; migration persists it to resume a hand-over after a crash.
public struct ScanCursor: Hashable, Sendable {
    /// The position of the last record returned.
    public let position: UInt32
    /// The key of the last record returned.
    public let key: [UInt8]

    /// A cursor just past the record `key` at `position`.
    public init(position: UInt32, key: [UInt8]) {
        self.position = position
        self.key = key
    }
}
