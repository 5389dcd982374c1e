import Foundation

/// A real server or tool process started from the build directory, with its
/// output captured to a file; tests stop it with SIGTERM (SIGKILL as a last
/// resort) and every fixture is cleaned up even when a test fails.
public final class ServiceProcess: @unchecked Sendable {
    public let name: String
    public let arguments: [String]
    public let logURL: URL
    private let process = Process()

    /// Where the built executables are: `RINGSTORE_BIN_DIR`, else next to the test bundle.
    public static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["RINGSTORE_BIN_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        // swift test runs `.build/<triple>/debug/<package>PackageTests.xctest`.
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// Starts `executable` (one of ours, or an absolute path) with `arguments`;
    /// output goes to a temporary log file.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        name = (executable as NSString).lastPathComponent
        self.arguments = arguments
        let binary = executable.hasPrefix("/") ? URL(fileURLWithPath: executable) : Self.binDirectory.appendingPathComponent(executable)
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw FixtureError("\(binary.path) is not built; run `swift build` first")
        }
        logURL = FileManager.default.temporaryDirectory
            .appendingPathComponent("ringstore-test-\(name)-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = binary
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: logURL)
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// What the process wrote so far.
    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits up to `timeout` for the exit; returns the exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        try await waitUntil("\(name) to exit after signal \(signal)", timeout: timeout) { !process.isRunning }
        return process.terminationStatus
    }

    /// Waits for the process to exit by itself; returns its exit status.
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await waitUntil("\(name) to exit", timeout: timeout) { !process.isRunning }
        return process.terminationStatus
    }

    /// How the process ended: `.exit` or `.uncaughtSignal`.
    public var terminationReason: Process.TerminationReason { process.terminationReason }
}

/// A fixture could not be set up.
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a tool (ringctl) to completion and returns its exit status and output.
public struct ToolRun: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    /// Runs one of our tools to its end and returns what it printed.
    ///
    /// Its standard input, output and error are temporary files, not pipes: a
    /// pipe's end can leak into another process the tests start at the same
    /// moment (Foundation's spawn does not keep the ends from concurrent
    /// children), and then the tool waits forever for the end of its input,
    /// or the test for the end of its output (seen: a `ringctl get --stdin`
    /// held open by a node started beside it).
    public static func run(_ executable: String, _ arguments: [String], stdin: String? = nil,
                           environment: [String: String] = [:], timeout: Duration = .seconds(60)) async throws -> ToolRun {
        // A built executable by name, or any program by absolute path (redis-cli).
        let binary = executable.hasPrefix("/") ? URL(fileURLWithPath: executable) : ServiceProcess.binDirectory.appendingPathComponent(executable)
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("ringstore-tool-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
        let inURL = scratch.appendingPathComponent("stdin")
        for url in [outURL, errURL, inURL] { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        if let stdin { try Data(stdin.utf8).write(to: inURL) }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let input = try FileHandle(forReadingFrom: inURL)
        defer {
            try? out.close()
            try? err.close()
            try? input.close()
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        // Away from the checkout and its environment's keys: ringctl would
        // otherwise use a local cluster's `.run/keys` against the test's cluster.
        process.currentDirectoryURL = scratch
        process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "RINGSTORE_KEY" && $0.key != "RINGSTORE_SERVER_KEY" }
            .merging(environment) { _, given in given }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        do {
            try await waitUntil("\(executable) to exit", timeout: timeout) { !process.isRunning }
        } catch {
            kill(process.processIdentifier, SIGKILL)
            try? await waitUntil("\(executable) to exit after SIGKILL", timeout: .seconds(10)) { !process.isRunning }
            throw error
        }
        return ToolRun(status: process.terminationStatus,
                       stdout: String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self),
                       stderr: String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self))
    }
}
