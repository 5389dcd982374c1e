import Foundation
import Logging
import Testing
@testable import ServiceHost

@Suite struct LineLogHandlerTests {
    // 2026-12-03T07:31:01.123Z
    let millis: Int64 = 1_796_283_061_123

    @Test func textLinesQuoteWhatWouldNotReadBackAsOneToken() {
        let line = LineLogHandler.line(format: .text, unixMillis: millis, level: .notice, label: "ringstore.node",
                                       message: "member.joined", metadata: [
                                           "plain": "10.0.0.1:7500", "spaced": "two words", "empty": "",
                                           "quote": "say \"hi\"", "newline": "a\nb", "equals": "k=v",
                                       ])
        #expect(line == "2026-12-03T07:31:01.123Z notice ringstore.node member.joined empty=\"\" equals=\"k=v\" " +
            "newline=\"a\\nb\" plain=10.0.0.1:7500 quote=\"say \\\"hi\\\"\" spaced=\"two words\"")
        let message = LineLogHandler.line(format: .text, unixMillis: millis, level: .info, label: "x", message: "a message", metadata: [:])
        #expect(message.hasSuffix(" info x \"a message\""))
    }

    @Test func jsonLinesAreOneObjectWithTheMetadata() throws {
        let line = LineLogHandler.line(format: .json, unixMillis: millis, level: .error, label: "ringstore.lock",
                                       message: "lock.granted", metadata: [
                                           "lock.name": "a\"b", "lock.token": .stringConvertible(7),
                                           "list": .array(["x", "y"]), "level": "shadowed", "control": "\u{01}",
                                       ])
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2026-12-03T07:31:01.123Z")
        #expect(object["level"] as? String == "error")
        #expect(object["logger"] as? String == "ringstore.lock")
        #expect(object["message"] as? String == "lock.granted")
        #expect(object["lock.name"] as? String == "a\"b")
        #expect(object["lock.token"] as? String == "7")
        #expect(object["list"] as? [String] == ["x", "y"])
        #expect(object["metadata.level"] as? String == "shadowed", "a metadata key never replaces a field of the line")
        #expect(object["control"] as? String == "\u{01}")
    }

    @Test func timestampsAreUTCWithMilliseconds() {
        #expect(LineLogHandler.timestamp(unixMillis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(LineLogHandler.timestamp(unixMillis: 1_000_000_000_007) == "2001-09-09T01:46:40.007Z")
    }

    @Test func eachEventIsOneLineOnTheDescriptorAndTheLevelFilters() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        var logger = Logger(label: "t") { label in LineLogHandler(label: label, level: .info, format: .text, descriptor: fds[1]) }
        logger[metadataKey: "service"] = "test"
        logger.debug("hidden")
        logger.info("shown", metadata: ["k": "v"])
        logger.warning("second")
        close(fds[1])
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fds[0], &buffer, buffer.count)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.hasSuffix(" info t shown k=v service=test") == true)
        #expect(lines.last?.hasSuffix(" warning t second service=test") == true)
    }
}
