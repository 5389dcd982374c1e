import Ring

/// Turns keys, one per line, into lines `KEY OWNER1 OWNER2 ...`: the bulk
/// output of `ringctl ring owners --stdin`, kept free of I/O so it can be tested.
///
/// Feed it input in chunks of any size with ``consume(_:into:)`` and call
/// ``finish(into:)`` at the end; lines may span chunks. Lines end at `\n`, a
/// `\r` before it is dropped, and the key is every other byte of the line,
/// written back unchanged. Empty lines are skipped and counted in
/// ``emptyLineCount``. Work per key is one MD5, a table lookup and a few
/// appends to the caller's output buffer: no allocation per key.
public struct OwnerLineFormatter: Sendable {
    private let ring: HashRing
    private let wanted: Int
    /// `" host:port"` of every member, back to back, by member index.
    private let ownerBytes: [UInt8]
    /// Member `i`'s text is `ownerBytes[ownerStarts[i] ..< ownerStarts[i + 1]]`.
    private let ownerStarts: [Int]
    /// The start of a line whose end has not arrived yet.
    private var pending: [UInt8] = []

    /// Lines read so far, including skipped ones.
    public private(set) var lineCount = 0
    /// Empty lines skipped so far (an empty key has no position).
    public private(set) var emptyLineCount = 0
    /// The 1-based number of the first skipped empty line, for error messages.
    public private(set) var firstEmptyLine: Int?

    /// Prepares to list `replicas` owners per key on `ring`; throws when `replicas < 1`.
    public init(ring: HashRing, replicas: Int) throws(RingError) {
        guard replicas >= 1 else {
            throw RingError.invalidReplicas.with(detail: "\(replicas) replicas; at least 1 is needed")
        }
        self.ring = ring
        self.wanted = min(replicas, ring.members.count)
        var bytes: [UInt8] = []
        var starts = [0]
        for member in ring.members {
            bytes.append(UInt8(ascii: " "))
            bytes.append(contentsOf: member.address.utf8)
            starts.append(bytes.count)
        }
        self.ownerBytes = bytes
        self.ownerStarts = starts
    }

    /// Formats every line completed by `chunk`, appending to `output`; keeps a trailing partial line.
    public mutating func consume(_ chunk: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        guard let base = chunk.baseAddress else { return }
        var start = 0
        if !pending.isEmpty {
            guard let newline = chunk.firstIndex(of: UInt8(ascii: "\n")) else {
                pending.append(contentsOf: chunk)
                return
            }
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: newline))
            let line = pending
            pending.removeAll(keepingCapacity: true)
            line.withUnsafeBytes { formatLines($0, into: &output) }
            start = newline + 1
        }
        // Everything up to the last newline is whole lines; the rest waits for the next chunk.
        var end = chunk.count
        while end > start && chunk[end - 1] != UInt8(ascii: "\n") { end -= 1 }
        if end > start {
            formatLines(UnsafeRawBufferPointer(start: base + start, count: end - start), into: &output)
        }
        pending.append(contentsOf: UnsafeRawBufferPointer(start: base + end, count: chunk.count - end))
    }

    /// Formats the last line if the input did not end with a newline.
    public mutating func finish(into output: inout [UInt8]) {
        guard !pending.isEmpty else { return }
        let line = pending
        pending.removeAll()
        line.withUnsafeBytes { formatLines($0, into: &output) }
    }

    /// Appends the line for one key given as bytes; throws ``RingError/emptyKey`` for an empty key.
    public func appendLine(forKey key: UnsafeRawBufferPointer, to output: inout [UInt8]) throws(RingError) {
        guard !key.isEmpty else { throw RingError.emptyKey }
        let wanted = wanted
        withViews { tables, names in
            Self.appendLine(key: key, tables: tables, names: names, wanted: wanted, to: &output)
        }
    }

    /// Formats `text`, which is whole lines; the last one may lack its `\n` (at the end of input).
    private mutating func formatLines(_ text: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        var lines = 0
        var empty = 0
        var firstEmpty: Int?
        let wanted = wanted
        // Locals only inside the loop: touching `self` there would copy it, retains and all, per key.
        withViews { tables, names in
            var start = 0
            while start < text.count {
                var end = start
                while end < text.count && text[end] != UInt8(ascii: "\n") { end += 1 }
                var keyEnd = end
                if keyEnd > start && text[keyEnd - 1] == UInt8(ascii: "\r") { keyEnd -= 1 }
                lines += 1
                if keyEnd == start {
                    empty += 1
                    if firstEmpty == nil { firstEmpty = lines }
                } else {
                    let key = UnsafeRawBufferPointer(rebasing: text[start..<keyEnd])
                    Self.appendLine(key: key, tables: tables, names: names, wanted: wanted, to: &output)
                }
                start = end + 1
            }
        }
        if firstEmptyLine == nil, let firstEmpty { firstEmptyLine = lineCount + firstEmpty }
        lineCount += lines
        emptyLineCount += empty
    }

    /// Unsafe views of the member names: `bytes[starts[i] ..< starts[i + 1]]` is `" host:port"` of member `i`.
    private struct OwnerNames {
        let bytes: UnsafeBufferPointer<UInt8>
        let starts: UnsafeBufferPointer<Int>
        /// Scratch space for one key's owners (member indices).
        let owners: UnsafeMutableBufferPointer<Int>
    }

    private func withViews(_ body: (OwnerLookup, OwnerNames) -> Void) {
        ring.withOwnerLookup { tables in
            ownerBytes.withUnsafeBufferPointer { bytes in
                ownerStarts.withUnsafeBufferPointer { starts in
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: max(1, wanted)) { owners in
                        body(tables, OwnerNames(bytes: bytes, starts: starts, owners: owners))
                    }
                }
            }
        }
    }

    private static func appendLine(
        key: UnsafeRawBufferPointer,
        tables: OwnerLookup,
        names: OwnerNames,
        wanted: Int,
        to output: inout [UInt8]
    ) {
        output.append(contentsOf: key)
        let count = tables.owners(ofKey: key, wanted: wanted, into: names.owners)
        for index in 0..<count {
            let member = names.owners[index]
            let name = names.bytes[names.starts[member]..<names.starts[member &+ 1]]
            output.append(contentsOf: UnsafeBufferPointer(rebasing: name))
        }
        output.append(UInt8(ascii: "\n"))
    }
}
