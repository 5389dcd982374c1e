import ArgumentParser
import Foundation
import RingstoreClient

/// `ringctl keygen NAME`: a CURVE keypair for a client, an operator or a service.
struct KeygenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a CURVE keypair: NAME.pub (the public key) and NAME.secret (readable by its owner only).",
        discussion: """
            Prints the public key, the line to add to the services' allowlist. An existing key is never \
            overwritten: remove its files first to replace it.
            """
    )

    @Argument(help: "The key's name (letters, digits, '.', '_' or '-').") var name: String
    @Option(help: ArgumentHelp("Directory for the two files (created with mode 0700).", valueName: "dir")) var dir = "."

    func run() async throws {
        let generated: Keys.Generated
        do {
            generated = try Keys.generate(name: name, directory: URL(fileURLWithPath: dir))
        } catch {
            printError("ringctl: keygen \(name): \(error.message)")
            throw ExitCode(1)
        }
        print(generated.publicKey)
        printError("ringctl: wrote \(generated.publicFile.path) and \(generated.secretFile.path) (mode 0600)")
    }
}
