import RESP
import Testing

/// RESPParser: what redis-cli, client libraries and telnet users send.
struct RESPParserTests {
    private func words(_ command: [[UInt8]]?) -> [String]? {
        command.map { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    @Test func pipelinedArraysComeOutInOrderWhateverTheChunking() throws {
        let wire = Array("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nv2\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n".utf8)
        for chunk in [1, 2, 3, 7, wire.count] {
            var parser = RESPParser()
            var seen: [[String]] = []
            var offset = 0
            while offset < wire.count {
                parser.append(Array(wire[offset..<min(wire.count, offset + chunk)]))
                offset += chunk
                while let command = try parser.next() { seen.append(words(command)!) }
            }
            #expect(seen == [["SET", "k", "v\r\nv2"], ["GET", "k"], ["PING"]], "chunks of \(chunk)")
            #expect(parser.buffered == 0)
        }
    }

    @Test func binaryValuesAndEmptyStringsKeepEveryByte() throws {
        var parser = RESPParser()
        parser.append(Array("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\n".utf8) + [0, 13, 10, 255] + Array("\r\n".utf8))
        let command = try #require(try parser.next())
        #expect(command == [Array("SET".utf8), [], [0, 13, 10, 255]])
    }

    @Test func inlineQuotesAndEscapes() throws {
        var parser = RESPParser()
        parser.append(Array("set \"a b\" 'c\\'d'\r\nset x \"\\x41\\n\"\r\n   \r\nget x\n".utf8))
        #expect(words(try parser.next()) == ["set", "a b", "c'd"])
        #expect(try parser.next() == [Array("set".utf8), Array("x".utf8), [0x41, 10]])
        #expect(words(try parser.next()) == ["get", "x"], "a blank line is skipped")
        #expect(try parser.next() == nil)
    }

    @Test(arguments: [
        ("*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$'"),
        ("*x\r\n", "invalid multibulk length"),
        ("*1\r\n$-5\r\n", "invalid bulk length"),
        ("*1\r\n$3\r\nabcde\r\n", "not terminated by CRLF"),
        ("set \"unclosed\r\n", "unbalanced quotes"),
        ("*1\r\n$99999999999999999999\r\n", "invalid bulk length"),
    ])
    func malformedInputIsAProtocolError(input: String, expected: String) throws {
        var parser = RESPParser()
        parser.append(Array(input.utf8))
        #expect { try parser.next() } throws: { ($0 as? RESPParser.ProtocolError)?.message.contains(expected) == true }
    }

    @Test func aHugeBulkLengthIsRefusedBeforeItsBytesArrive() throws {
        var parser = RESPParser(maxBulkBytes: 1 << 20)
        parser.append(Array("*2\r\n$3\r\nSET\r\n$1073741824\r\n".utf8))
        #expect { try parser.next() } throws: { ($0 as? RESPParser.ProtocolError)?.message == "Protocol error: invalid bulk length" }
        var many = RESPParser(maxArguments: 100)
        many.append(Array("*101\r\n".utf8))
        #expect(throws: RESPParser.ProtocolError.self) { try many.next() }
        var big = RESPParser(maxBulkBytes: 1000, maxCommandBytes: 2500)
        big.append(Array("*4\r\n$3\r\nSET\r\n$1000\r\n".utf8) + [UInt8](repeating: 1, count: 1000) + Array("\r\n$1000\r\n".utf8)
                   + [UInt8](repeating: 1, count: 1000) + Array("\r\n$1000\r\n".utf8))
        #expect { try big.next() } throws: { ($0 as? RESPParser.ProtocolError)?.message == "Protocol error: command too big" }
    }

    @Test func anEndlessInlineLineIsRefused() throws {
        var parser = RESPParser(maxInlineBytes: 1024)
        parser.append([UInt8](repeating: UInt8(ascii: "a"), count: 2000))
        #expect { try parser.next() } throws: { ($0 as? RESPParser.ProtocolError)?.message.contains("too big inline") == true }
    }

    @Test func aHalfSentCommandWaits() throws {
        var parser = RESPParser()
        parser.append(Array("*2\r\n$3\r\nGET\r\n$5\r\nab".utf8))
        #expect(try parser.next() == nil)
        parser.append(Array("cde\r\n".utf8))
        #expect(words(try parser.next()) == ["GET", "abcde"])
    }
}

struct RESPWriterTests {
    @Test func repliesInRESP2AndRESP3() {
        var two = RESPWriter(version: 2)
        two.simple("OK"); two.error("ERR bad\r\nthing"); two.integer(-3); two.bulk("hi"); two.null()
        two.mapHeader(1); two.bulk("a"); two.integer(1)
        #expect(String(decoding: two.take(), as: UTF8.self) == "+OK\r\n-ERR bad  thing\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n")
        #expect(two.isEmpty)
        var three = RESPWriter(version: 3)
        three.null(); three.mapHeader(1); three.setHeader(2)
        #expect(String(decoding: three.take(), as: UTF8.self) == "_\r\n%1\r\n~2\r\n")
    }
}
