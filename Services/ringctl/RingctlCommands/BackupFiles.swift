import Foundation
import Glibc

/// The files of a backup directory: new files written and fsync'd, the
/// manifest replaced atomically, the directories synced, so that a manifest
/// on disk means every file it names is on disk too.
enum BackupFiles {
    /// A file created for writing (never over an existing one), readable by its
    /// owner only (a backup holds every value of the cluster), synced when closed.
    final class NewFile {
        let path: String
        private var descriptor: Int32

        init(_ path: String) throws(BackupError) {
            self.path = path
            descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw BackupFiles.failure("cannot create \(path)") }
        }

        deinit {
            if descriptor >= 0 { _ = Glibc.close(descriptor) }
        }

        /// Appends every byte of `bytes` (retrying short writes and EINTR).
        func write(_ bytes: [UInt8]) throws(BackupError) {
            let outcome: Result<Void, BackupError> = bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return .failure(BackupFiles.failure("cannot write \(path)"))
                    }
                    offset += written
                }
                return .success(())
            }
            try outcome.get()
        }

        /// fsyncs and closes the file.
        func close() throws(BackupError) {
            guard descriptor >= 0 else { return }
            defer {
                _ = Glibc.close(descriptor)
                descriptor = -1
            }
            guard fsync(descriptor) == 0 else { throw BackupFiles.failure("cannot sync \(path)") }
        }
    }

    /// Whether `path` is missing or an empty directory; throws when it is a file.
    static func isMissingOrEmptyDirectory(_ path: String) throws(BackupError) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return true }
        guard isDirectory.boolValue else { throw BackupError("\(path) is a file, not a directory") }
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path).isEmpty
        } catch {
            throw BackupError("cannot list \(path): \(error.localizedDescription)")
        }
    }

    /// Creates `path` and its parents.
    static func makeDirectory(_ path: String) throws(BackupError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw BackupError("cannot create \(path): \(error.localizedDescription)")
        }
    }

    /// Writes `bytes` to the new file `path`, fsync'd.
    static func writeNew(_ bytes: [UInt8], to path: String) throws(BackupError) {
        let file = try NewFile(path)
        try file.write(bytes)
        try file.close()
    }

    /// Writes `bytes` to `path` atomically: a temporary file fsync'd, renamed
    /// over `path`, then the directory fsync'd.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(BackupError) {
        let temporary = path + ".tmp"
        unlink(temporary)
        do {
            try writeNew(bytes, to: temporary)
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        try syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// fsyncs a directory, so the names created in it are durable.
    static func syncDirectory(_ path: String) throws(BackupError) {
        let directory = Glibc.open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw failure("cannot open \(path)") }
        defer { _ = Glibc.close(directory) }
        guard fsync(directory) == 0 else { throw failure("cannot sync \(path)") }
    }

    /// Reads the whole of a (small) file.
    static func read(_ path: String) throws(BackupError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw BackupError("cannot read \(path)") }
        return Array(data)
    }

    static func failure(_ what: String) -> BackupError {
        BackupError("\(what): \(String(cString: strerror(errno)))")
    }
}
