import Foundation
import RingProtocol

/// Placement's durable state: one protobuf file replaced atomically.
///
/// `save` writes a temporary file, fsyncs it, renames it over the old one and
/// fsyncs the directory, so after a crash the file holds either the old or the
/// new state, never a mix, and a saved state survives power loss.
public final class PlacementStore {
    public let directory: URL
    private var file: URL { directory.appendingPathComponent("placement.pb") }
    private var temporary: URL { directory.appendingPathComponent("placement.pb.tmp") }

    /// Opens (creating if needed) the data directory.
    public init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// The saved state, or `nil` for a new cluster. A file that does not decode
    /// is an error, not an empty cluster: placement refuses to start rather
    /// than forget its members.
    public func load() throws -> WirePlacementState? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        let data = try Data(contentsOf: file)
        do {
            return try WirePlacementState(serializedBytes: data)
        } catch {
            throw StoreError("\(file.path) is corrupt (\(error)); move it away to start a new cluster")
        }
    }

    /// Saves `state` durably; returns only once it is on disk.
    public func save(_ state: WirePlacementState) throws {
        let bytes: [UInt8] = try state.serializedBytes()
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError.errno("open \(temporary.path)") }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                write(fd, buffer.baseAddress! + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                let error = StoreError.errno("write \(temporary.path)")
                close(fd)
                throw error
            }
            written += result
        }
        guard fsync(fd) == 0 else {
            let error = StoreError.errno("fsync \(temporary.path)")
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temporary.path, file.path) == 0 else { throw StoreError.errno("rename to \(file.path)") }
        let dir = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw StoreError.errno("open \(directory.path)") }
        defer { close(dir) }
        guard fsync(dir) == 0 else { throw StoreError.errno("fsync \(directory.path)") }
    }
}

/// A failure to read or write placement's state.
public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }

    static func errno(_ operation: String) -> StoreError {
        StoreError("\(operation): \(String(cString: strerror(Foundation.errno)))")
    }
}
