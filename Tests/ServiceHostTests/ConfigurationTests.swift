import ArgumentParser
import Testing
@testable import ServiceHost

/// A command shaped like a service's: options of its own and an option group.
struct Sample: ParsableCommand {
    @Option var publish = "tcp://127.0.0.1:7401"
    @Option var replicas = 3
    @Option var tag: [String] = []
    @Flag var verbose = false
    @OptionGroup var server: ServerOptions<SampleDefaults>
}

enum SampleDefaults: ServiceDefaults {
    static let listen = "tcp://127.0.0.1:7400"
    static let dataDir = "sample-data"
    static let dataDirHelp = "Data."
}

@Suite struct ConfigurationTests {
    let options = Configuration.options(of: Sample.self)

    func parsed(_ commandLine: [String], environment: [String: String] = [:], file: String? = nil) throws -> Sample {
        let arguments = try Configuration.arguments(options: options, commandLine: commandLine, environment: environment,
                                                    readFile: { path in
                                                        guard let file, path == "service.toml" else { throw CocoaLikeError() }
                                                        return file
                                                    })
        return try Sample.parse(arguments)
    }

    @Test func theOptionsComeFromTheCommandsDefinitionGroupsIncluded() {
        let names = Set(options.map(\.name))
        #expect(names.isSuperset(of: ["publish", "replicas", "tag", "verbose", "listen", "data-dir", "log-level", "log-format",
                                      "server-key", "allowlist", "insecure"]))
        #expect(!names.contains("config") && !names.contains("help"))
        #expect(options.first { $0.name == "verbose" }?.isFlag == true)
        #expect(options.first { $0.name == "tag" }?.isRepeating == true)
        #expect(options.first { $0.name == "data-dir" }?.environmentName == "RINGSTORE_DATA_DIR")
    }

    @Test func flagsWinOverTheEnvironmentWhichWinsOverTheFile() throws {
        let file = """
            # the service's settings
            publish = "tcp://0.0.0.0:9001"
            replicas = 5
            data-dir = '/var/lib/ringstore'   # single quotes are literal
            verbose = true
            tag = ["a", "b"]
            """
        let fromFile = try parsed(["--config", "service.toml", "--insecure"], file: file)
        #expect(fromFile.publish == "tcp://0.0.0.0:9001" && fromFile.replicas == 5 && fromFile.verbose)
        #expect(fromFile.server.dataDir == "/var/lib/ringstore" && fromFile.tag == ["a", "b"])

        let environment = ["RINGSTORE_REPLICAS": "7", "RINGSTORE_PUBLISH": "tcp://10.0.0.1:9001", "RINGSTORE_CONFIG": "service.toml"]
        let both = try parsed(["--insecure"], environment: environment, file: file)
        #expect(both.replicas == 7 && both.publish == "tcp://10.0.0.1:9001", "the environment wins over the file")
        #expect(both.server.dataDir == "/var/lib/ringstore", "RINGSTORE_CONFIG names the file")

        let all = try parsed(["--replicas", "9", "--publish=tcp://1.2.3.4:1", "--config", "service.toml", "--insecure"],
                             environment: environment, file: file)
        #expect(all.replicas == 9 && all.publish == "tcp://1.2.3.4:1", "flags win")
    }

    @Test func theEnvironmentSetsFlagsAndLists() throws {
        let on = try parsed([], environment: ["RINGSTORE_INSECURE": "true", "RINGSTORE_VERBOSE": "1", "RINGSTORE_TAG": "x, y"])
        #expect(on.server.insecure && on.verbose && on.tag == ["x", "y"])
        let off = try parsed(["--insecure"], environment: ["RINGSTORE_VERBOSE": "false"])
        #expect(!off.verbose)
        #expect(throws: ConfigurationError.self) { try parsed([], environment: ["RINGSTORE_VERBOSE": "maybe"]) }
    }

    @Test func aBadFileIsRefusedNamingItsLine() throws {
        func failure(_ file: String) -> String {
            do {
                _ = try parsed(["--config", "service.toml", "--insecure"], file: file)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure("replicas = 3\nbogus = 1\n").hasPrefix("service.toml:2: 'bogus' is not an option"))
        #expect(failure("replicas 3").contains("service.toml:1: expected name = value"))
        #expect(failure("[server]\nlisten = \"x\"").contains(":1: tables are not used"))
        #expect(failure("publish = \"open").contains("not closed"))
        #expect(failure("replicas = 3\nreplicas = 4").contains(":2: 'replicas' is set twice"))
        #expect(failure("publish = [\"a\", \"b\"]").contains("takes one value"))
        #expect(failure("replicas = 3 4").contains("unexpected"))
        #expect(failure("verbose = sometimes").contains("is a flag"))
        #expect(failure("replicas = many").contains("replicas"), "ArgumentParser checks the value as it would a flag's")
        do {
            _ = try Configuration.arguments(options: options, commandLine: ["--config", "missing.toml"], environment: [:],
                                            readFile: { _ in throw CocoaLikeError() })
            Issue.record("a missing file was accepted")
        } catch {
            #expect("\(error)".contains("--config missing.toml: cannot read it"))
        }
    }

    @Test func underscoresAndDashesNameTheSameOption() throws {
        let sample = try parsed(["--config", "service.toml", "--insecure"], file: "data_dir = \"d\"\nlog_level = \"debug\"")
        #expect(sample.server.dataDir == "d" && sample.server.logLevel == .debug)
    }

    @Test func anArgumentAfterADoubleDashIsNotAnOption() throws {
        let given = try Configuration.arguments(options: options, commandLine: ["--", "--replicas"],
                                                environment: ["RINGSTORE_REPLICAS": "4"])
        #expect(given == ["--replicas=4", "--", "--replicas"])
    }
}

private struct CocoaLikeError: Error {}
