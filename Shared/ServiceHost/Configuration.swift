import ArgumentParser
import Foundation

/// Where a service's options come from, in order: the command line, then
/// environment variables, then a config file, then the defaults.
///
/// - Environment: `RINGSTORE_` and the long option name upper-cased with
///   `-` as `_` (`--data-dir` is `RINGSTORE_DATA_DIR`).
/// - The config file (`--config FILE` or `RINGSTORE_CONFIG`): flat TOML, one
///   `option-name = value` per line, `#` comments, strings in double quotes,
///   numbers and words bare, a flag as `true` or `false`, a repeating option
///   as an array (`allow = ["a", "b"]`). A name that is not an option is an
///   error naming the file and line, as is a value that is not one.
///
/// The sources become command-line arguments ahead of parsing, so every
/// option is checked and reported by ArgumentParser the same way, whatever
/// its source. The option names come from the command's own definition.
public enum Configuration {
    public static let environmentPrefix = "RINGSTORE_"

    /// One option of a command, as its definition declares it.
    public struct OptionInfo: Equatable, Sendable {
        public let name: String
        public let isFlag: Bool
        public let isRepeating: Bool
        /// What `--help` says of it, its default and its value's name, as declared.
        public var abstract: String = ""
        public var defaultValue: String?
        public var valueName: String?
        public var environmentName: String { Configuration.environmentName(of: name) }
    }

    /// `--data-dir` -> `RINGSTORE_DATA_DIR`.
    public static func environmentName(of option: String) -> String {
        environmentPrefix + option.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The long options `command` declares (its option groups included),
    /// read from ArgumentParser's own description of the command.
    public static func options<Command: ParsableArguments>(of command: Command.Type) -> [OptionInfo] {
        options(fromHelpDump: Data(command._dumpHelp().utf8)).filter { $0.name != "config" }
    }

    /// The long options (not --help or --version) in ArgumentParser's
    /// description of a command, the JSON an executable prints for
    /// `--experimental-dump-help`; empty when it is not that JSON.
    public static func options(fromHelpDump data: Data) -> [OptionInfo] {
        guard let dump = try? JSONDecoder().decode(HelpDump.self, from: data) else { return [] }
        return (dump.command.arguments ?? []).compactMap { argument in
            guard argument.kind != "positional", let long = argument.names?.first(where: { $0.kind == "long" })?.name,
                  long != "help", long != "version" else { return nil }
            return OptionInfo(name: long, isFlag: argument.kind == "flag", isRepeating: argument.isRepeating,
                              abstract: argument.abstract ?? "", defaultValue: argument.defaultValue, valueName: argument.valueName)
        }
    }

    /// The command line completed from the environment and the config file:
    /// an option already on the command line is left alone, then one set in
    /// the environment is added, then one set in the file.
    public static func arguments(options: [OptionInfo], commandLine: [String], environment: [String: String],
                                 readFile: (String) throws -> String = { try String(contentsOfFile: $0, encoding: .utf8) })
        throws(ConfigurationError) -> [String] {
        let given = givenOptions(commandLine)
        var added: [String] = []
        var taken = given
        for option in options where !taken.contains(option.name) {
            guard let value = environment[option.environmentName] else { continue }
            added += try arguments(for: option, values: option.isRepeating ? splitList(value) : [value],
                                   source: "environment variable \(option.environmentName)")
            taken.insert(option.name)
        }
        if let file = configFile(commandLine: commandLine, environment: environment) {
            let text: String
            do {
                text = try readFile(file)
            } catch {
                throw ConfigurationError("--config \(file): cannot read it (\(error.localizedDescription))")
            }
            let byName = Dictionary(options.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            for entry in try ConfigFile.parse(text, source: file) {
                guard let option = byName[entry.name] else {
                    let known = options.map(\.name).sorted().joined(separator: ", ")
                    throw ConfigurationError("\(file):\(entry.line): '\(entry.name)' is not an option (options: \(known))")
                }
                guard !taken.contains(option.name) else { continue }
                if entry.values.count > 1 && !option.isRepeating {
                    throw ConfigurationError("\(file):\(entry.line): '\(entry.name)' takes one value, not a list")
                }
                added += try arguments(for: option, values: entry.values, source: "\(file):\(entry.line)")
                taken.insert(option.name)
            }
        }
        // Added options go before the command line's, ahead of any `--`.
        return added + commandLine
    }

    /// The command line completed from this process's environment and config
    /// file; on a bad source, the message and exit code 64 (EX_USAGE).
    public static func processArguments<Command: ParsableArguments>(for command: Command.Type) -> [String] {
        let commandLine = Array(CommandLine.arguments.dropFirst())
        do {
            return try arguments(options: options(of: command), commandLine: commandLine,
                                 environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            exit(64)
        }
    }

    // MARK: Parts

    private static func configFile(commandLine: [String], environment: [String: String]) -> String? {
        for (index, argument) in commandLine.enumerated() {
            if argument == "--" { break }
            if argument == "--config", index + 1 < commandLine.count { return commandLine[index + 1] }
            if argument.hasPrefix("--config=") { return String(argument.dropFirst("--config=".count)) }
        }
        return environment[environmentPrefix + "CONFIG"]
    }

    /// Long option names present on the command line (before any `--`).
    private static func givenOptions(_ commandLine: [String]) -> Set<String> {
        var names: Set<String> = []
        for argument in commandLine {
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            let name = argument.dropFirst(2).split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            names.insert(name)
            if name.hasPrefix("no-") { names.insert(String(name.dropFirst(3))) }
        }
        return names
    }

    private static func arguments(for option: OptionInfo, values: [String], source: String) throws(ConfigurationError) -> [String] {
        if option.isFlag {
            guard values.count == 1, let on = parseBool(values[0]) else {
                throw ConfigurationError("\(source): --\(option.name) is a flag: true or false, not '\(values.joined(separator: ","))'")
            }
            return on ? ["--\(option.name)"] : []
        }
        return values.map { "--\(option.name)=\($0)" }
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "1", "yes", "on": true
        case "false", "0", "no", "off", "": false
        default: nil
        }
    }

    /// A repeating option's values in one environment variable: comma-separated.
    private static func splitList(_ value: String) -> [String] {
        value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// The part of ArgumentParser's `--experimental-dump-help` JSON read here.
private struct HelpDump: Decodable {
    struct Command: Decodable { let arguments: [Argument]? }
    struct Argument: Decodable {
        struct Name: Decodable { let kind: String; let name: String }
        let kind: String
        let names: [Name]?
        let isRepeating: Bool
        let abstract: String?
        let defaultValue: String?
        let valueName: String?
    }
    let command: Command
}

/// A configuration source that cannot be used; the message names it.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The flat TOML subset a config file is written in.
enum ConfigFile {
    struct Entry: Equatable {
        let name: String
        let values: [String]
        let line: Int
    }

    static func parse(_ text: String, source: String) throws(ConfigurationError) -> [Entry] {
        var entries: [Entry] = []
        var seen: Set<String> = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var rest = Substring(raw).drop { $0 == " " || $0 == "\t" }
            if rest.last == "\r" { rest = rest.dropLast() }
            if rest.isEmpty || rest.first == "#" { continue }
            if rest.first == "[" {
                throw ConfigurationError("\(source):\(number): tables are not used: write each option as name = value at the top level")
            }
            guard let equals = rest.firstIndex(of: "=") else {
                throw ConfigurationError("\(source):\(number): expected name = value")
            }
            let name = rest[..<equals].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ConfigurationError("\(source):\(number): '\(name)' is not an option name")
            }
            // Both spellings of a name are the option's: data-dir and data_dir.
            let option = name.replacingOccurrences(of: "_", with: "-")
            guard seen.insert(option).inserted else {
                throw ConfigurationError("\(source):\(number): '\(name)' is set twice")
            }
            var scanner = ValueScanner(text: rest[rest.index(after: equals)...], source: source, line: number)
            let values = try scanner.values()
            entries.append(Entry(name: option, values: values, line: number))
        }
        return entries
    }

    /// Reads one value, or an array of values, then an optional comment.
    private struct ValueScanner {
        var text: Substring
        let source: String
        let line: Int

        mutating func values() throws(ConfigurationError) -> [String] {
            skipSpace()
            var result: [String]
            if text.first == "[" {
                text.removeFirst()
                result = []
                skipSpace()
                while text.first != "]" {
                    result.append(try value())
                    skipSpace()
                    if text.first == "," {
                        text.removeFirst()
                        skipSpace()
                    } else if text.first != "]" {
                        throw fail("expected , or ] in the array")
                    }
                }
                text.removeFirst()
            } else {
                result = [try value()]
            }
            skipSpace()
            guard text.isEmpty || text.first == "#" else { throw fail("unexpected '\(text)' after the value") }
            return result
        }

        private mutating func value() throws(ConfigurationError) -> String {
            guard let first = text.first else { throw fail("a value is missing") }
            if first == "\"" || first == "'" {
                text.removeFirst()
                var out = ""
                while let character = text.first {
                    text.removeFirst()
                    if character == first { return out }
                    if character == "\\" && first == "\"" {
                        guard let escaped = text.first else { break }
                        text.removeFirst()
                        switch escaped {
                        case "n": out.append("\n")
                        case "t": out.append("\t")
                        case "\"": out.append("\"")
                        case "\\": out.append("\\")
                        default: throw fail("unknown escape \\\(escaped)")
                        }
                    } else {
                        out.append(character)
                    }
                }
                throw fail("the string is not closed")
            }
            let bare = text.prefix { !($0 == " " || $0 == "\t" || $0 == "," || $0 == "]" || $0 == "#") }
            guard !bare.isEmpty else { throw fail("a value is missing") }
            text.removeFirst(bare.count)
            return String(bare)
        }

        private mutating func skipSpace() {
            text = text.drop { $0 == " " || $0 == "\t" }
        }

        private func fail(_ message: String) -> ConfigurationError {
            ConfigurationError("\(source):\(line): \(message)")
        }
    }
}
