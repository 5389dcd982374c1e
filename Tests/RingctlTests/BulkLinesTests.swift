@testable import RingctlCommands
import Testing

@Suite struct LineSplitterTests {
    private func split(_ chunks: [String]) -> [String] {
        var splitter = LineSplitter()
        var lines: [String] = []
        for chunk in chunks {
            splitter.feed(Array(chunk.utf8)) { lines.append(String(decoding: $0, as: UTF8.self)) }
        }
        if let last = splitter.finish() { lines.append(String(decoding: last, as: UTF8.self)) }
        return lines
    }

    @Test func linesEndAtNewlines() {
        #expect(split(["a\tb\nc\td\n"]) == ["a\tb", "c\td"])
    }

    @Test(arguments: [1, 2, 3, 5, 7])
    func linesMaySpanChunks(chunkSize: Int) {
        let text = Array("first\tline\nsecond\n\nfourth\tx\ty\n")
        let chunks = stride(from: 0, to: text.count, by: chunkSize).map { String(text[$0..<min(text.count, $0 + chunkSize)]) }
        #expect(split(chunks) == ["first\tline", "second", "", "fourth\tx\ty"])
    }

    @Test func aLastLineWithoutNewlineIsKept() {
        #expect(split(["a\nb"]) == ["a", "b"])
        #expect(split(["a\n"]) == ["a"])
        #expect(split([]) == [])
    }

    @Test func aCarriageReturnBeforeTheNewlineIsDropped() {
        #expect(split(["a\tb\r\nc\r", "\n", "d\r"]) == ["a\tb", "c", "d"])
        #expect(split(["a\rb\n"]) == ["a\rb"])
    }

    @Test func everyOtherByteIsKept() {
        var splitter = LineSplitter()
        var lines: [[UInt8]] = []
        splitter.feed([0x00, 0xFF, 0x09, 0x80, 0x0A, 0xC3, 0x28, 0x0A]) { lines.append($0) }
        #expect(lines == [[0x00, 0xFF, 0x09, 0x80], [0xC3, 0x28]])
        #expect(splitter.finish() == nil)
    }
}

@Suite struct BulkLineTests {
    @Test func aPutLineSplitsAtTheFirstTab() throws {
        let (key, value) = try BulkLine.parsePut(Array("k\tv\twith tabs".utf8)).get()
        #expect(key == Array("k".utf8))
        #expect(value == Array("v\twith tabs".utf8))
    }

    @Test func aPutLineMayHaveAnEmptyValue() throws {
        let (key, value) = try BulkLine.parsePut(Array("k\t".utf8)).get()
        #expect(key == Array("k".utf8))
        #expect(value.isEmpty)
    }

    @Test func aPutLineWithoutTabIsMalformed() {
        #expect(throws: BulkLine.Malformed(key: Array("just a key".utf8), reason: "no TAB between key and value")) {
            try BulkLine.parsePut(Array("just a key".utf8)).get()
        }
        #expect(throws: BulkLine.Malformed(key: [], reason: "empty line")) { try BulkLine.parsePut([]).get() }
    }

    @Test func aPutLineWithAnEmptyKeyIsMalformed() {
        #expect(throws: BulkLine.Malformed(key: [], reason: "empty key")) { try BulkLine.parsePut(Array("\tvalue".utf8)).get() }
    }

    @Test func aGetLineIsTheKey() throws {
        #expect(try BulkLine.parseGet([0x00, 0x09, 0xFF]).get() == [0x00, 0x09, 0xFF])
        #expect(throws: BulkLine.Malformed(key: [], reason: "empty key")) { try BulkLine.parseGet([]).get() }
    }
}

@Suite struct BulkOutcomeTests {
    private func line(_ outcome: BulkOutcome, key: String = "k") -> String {
        var output: [UInt8] = []
        outcome.append(key: Array(key.utf8), to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    @Test func outcomesPrintAsKeyTabAnswer() {
        #expect(line(.ok) == "k\tOK\n")
        #expect(line(.value(Array("v 1".utf8))) == "k\tv 1\n")
        #expect(line(.notFound) == "k\tNOT_FOUND\n")
        #expect(line(.error("UNAVAILABLE: 1 of 2 replicas answered")) == "k\tERROR UNAVAILABLE: 1 of 2 replicas answered\n")
    }

    @Test func anErrorReasonStaysOnOneLine() {
        #expect(line(.error("a\nb\tc\rd")) == "k\tERROR a b c d\n")
    }

    @Test func valuesAreWrittenByteForByte() {
        var output: [UInt8] = []
        BulkOutcome.value([0x00, 0xFF, 0x80]).append(key: [0x01], to: &output)
        #expect(output == [0x01, 0x09, 0x00, 0xFF, 0x80, 0x0A])
    }

    @Test func onlyErrorsAreFailures() {
        #expect(BulkOutcome.error("x").isFailure)
        #expect(!BulkOutcome.notFound.isFailure)
        #expect(!BulkOutcome.ok.isFailure)
        #expect(!BulkOutcome.value([]).isFailure)
    }
}
