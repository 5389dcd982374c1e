import Dispatch
import Synchronization

import Glibc

/// ringctl's standard streams: every raw read and write of fd 0, 1 and 2
/// goes through here (results on stdout, errors and diagnostics on stderr).
enum StdIO {
    /// Reads up to `buffer.count` bytes from `fileDescriptor` (retrying EINTR); 0 at the end of input.
    /// Whether the descriptor is a terminal (progress lines, in-place refreshes).
    static func isTerminal(_ fileDescriptor: Int32) -> Bool { isatty(fileDescriptor) == 1 }

    static func read(_ fileDescriptor: Int32 = 0, into buffer: UnsafeMutableRawBufferPointer) throws(StreamError) -> Int {
        while true {
            let count = Glibc.read(fileDescriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw StreamError(operation: "reading fd \(fileDescriptor)", code: errno) }
        }
    }

    /// Writes every byte of `bytes` to `fileDescriptor` (retrying EINTR and short writes).
    static func write(_ fileDescriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws(StreamError) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw StreamError(operation: "writing fd \(fileDescriptor)", code: errno)
            }
            offset += written
        }
    }

    /// Writes `text` to `fileDescriptor` at once, unbuffered; a closed stream drops it.
    static func write(_ fileDescriptor: Int32, text: String) {
        var text = text
        text.withUTF8 { try? write(fileDescriptor, UnsafeRawBufferPointer($0)) }
    }
}

/// A failed read or write on a standard stream.
struct StreamError: Error, CustomStringConvertible {
    let operation: String
    let code: Int32

    var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// Writes a line to stderr (errors and diagnostics; stdout is for results).
func printError(_ message: String) {
    StdIO.write(2, text: message + "\n")
}

/// Writes a line straight to stdout, unbuffered, so a pipe sees it at once.
func writeLine(_ line: String) {
    StdIO.write(1, text: line + "\n")
}

/// Standard output through one buffer shared by concurrent tasks: whole lines
/// are appended, written in large blocks, and flushed by the caller regularly.
/// A closed stdout (EPIPE) drops the output.
final class OutputSink: Sendable {
    static let blockSize = 256 * 1024
    private let buffer = Mutex<[UInt8]>([])
    private let fileDescriptor: Int32

    /// A sink writing to `fileDescriptor` (standard output by default).
    init(fileDescriptor: Int32 = 1) {
        self.fileDescriptor = fileDescriptor
    }

    func append(_ bytes: [UInt8]) {
        buffer.withLock { buffer in
            buffer.append(contentsOf: bytes)
            if buffer.count >= Self.blockSize { drain(&buffer) }
        }
    }

    func flush() {
        buffer.withLock { drain(&$0) }
    }

    private func drain(_ buffer: inout [UInt8]) {
        buffer.withUnsafeBytes { try? StdIO.write(fileDescriptor, $0) }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Standard input in chunks, read on a dispatch queue of its own so that a slow
/// producer never blocks a thread of the cooperative pool.
final class StandardInput: Sendable {
    static let chunkSize = 256 * 1024
    private let queue = DispatchQueue(label: "ringctl.stdin")

    /// The next chunk, or nil at the end of the input.
    func nextChunk() async throws -> [UInt8]? {
        let result: Result<[UInt8]?, StreamError> = await withCheckedContinuation { continuation in
            queue.async {
                var chunk = [UInt8](repeating: 0, count: Self.chunkSize)
                let read = chunk.withUnsafeMutableBytes { buffer in
                    Result { () throws(StreamError) in try StdIO.read(0, into: buffer) }
                }
                continuation.resume(returning: read.map { count in
                    count == 0 ? nil : Array(chunk[..<count])
                })
            }
        }
        return try result.get()
    }
}
