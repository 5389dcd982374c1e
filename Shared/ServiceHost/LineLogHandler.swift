import ArgumentParser
import Basics
import Foundation
import Logging

/// How a service writes its log lines (`--log-format`).
public enum LogFormat: String, CaseIterable, Sendable, ExpressibleByArgument {
    /// `2026-12-03T07:31:01.123Z info ringstore.placement member.joined member.address="10.0.0.1:7500"`
    case text
    /// One JSON object per line: `time`, `level`, `logger`, `message`, then the metadata.
    case json
}

/// A swift-log handler that writes one line per event to standard error (or
/// another descriptor), with a millisecond UTC timestamp, in `text` or `json`.
///
/// Each line goes out in a single write(2), so lines from different threads
/// never interleave. In text form a value is quoted (with `\"`, `\\`, `\n`
/// escapes) when it is empty or holds a space, a quote, `=` or a control
/// character; metadata keys are sorted, so a line's shape does not depend on
/// a dictionary's order.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public let label: String
    public let format: LogFormat
    private let descriptor: Int32

    public init(label: String, level: Logger.Level, format: LogFormat, descriptor: Int32 = STDERR_FILENO) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.descriptor = descriptor
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error { merged["error"] = .string("\(error)") }
        let line = Self.line(format: format, unixMillis: WallClock.micros / 1000, level: event.level, label: label,
                             message: event.message.description, metadata: merged)
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// One line, without its newline.
    public static func line(format: LogFormat, unixMillis: Int64, level: Logger.Level, label: String, message: String,
                            metadata: Logger.Metadata) -> String {
        let time = timestamp(unixMillis: unixMillis)
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            var line = "\(time) \(level) \(label) \(quotedIfNeeded(message))"
            for key in keys {
                line += " \(key)=\(quotedIfNeeded(text(metadata[key]!)))"
            }
            return line
        case .json:
            var line = "{\"time\":\"\(time)\",\"level\":\"\(level)\",\"logger\":\(jsonString(label)),\"message\":\(jsonString(message))"
            let reserved: Set<String> = ["time", "level", "logger", "message"]
            for key in keys {
                let name = reserved.contains(key) ? "metadata." + key : key
                line += ",\(jsonString(name)):\(json(metadata[key]!))"
            }
            return line + "}"
        }
    }

    /// `2026-12-03T07:31:01.123Z`.
    public static func timestamp(unixMillis: Int64) -> String {
        var seconds = time_t(unixMillis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(unixMillis % 1000)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T" +
            "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    static func text(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map(text).joined(separator: ",") + "]"
        case .dictionary(let entries): "{" + entries.keys.sorted().map { "\($0)=\(text(entries[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// `value`, or `"value"` with escapes when it would not read back as one token.
    static func quotedIfNeeded(_ value: String) -> String {
        let needs = value.isEmpty || value.unicodeScalars.contains { scalar in
            scalar == " " || scalar == "\"" || scalar == "=" || scalar == "\\" || scalar.value < 0x20 || scalar.value == 0x7f
        }
        return needs ? quoted(value, control: { "\\x" + hex($0, digits: 2) }) : value
    }

    /// `value` in double quotes with `\"`, `\\`, `\n`, `\r`, `\t`, and other
    /// control characters (and DEL) as `control` writes them.
    static func quoted(_ value: String, control: (UInt32) -> String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += control(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    static func json(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let string): jsonString(string)
        case .stringConvertible(let convertible): jsonString(convertible.description)
        case .array(let values): "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let entries):
            "{" + entries.keys.sorted().map { "\(jsonString($0)):\(json(entries[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    static func jsonString(_ value: String) -> String {
        quoted(value, control: { "\\u" + hex($0, digits: 4) })
    }
}
