import Basics
import Foundation
import Logging
import RPC

/// The passwords of the RESP front door (`--resp-passwords FILE`): one
/// `ROLE PASSWORD [NAME]` per line, roles as in the CURVE allowlist (client,
/// node, admin; any of them may use every RESP command), `#` starting a
/// comment. `AUTH password` (or `AUTH default password`) picks the entry by
/// password, `AUTH name password` by both. The file is a secret: like a key file it must not be
/// readable by others. SIGHUP re-reads it; connections authenticated with a
/// password that is gone are closed.
final class RESPPasswords {
    struct Entry: Equatable {
        let role: Allowlist.Role
        let name: String
        let password: [UInt8]
    }

    private(set) var entries: [Entry]
    /// Called on the reactor thread with the names whose password a reload removed.
    var onRevoked: (Set<String>) -> Void = { _ in }
    private var reload: SignalWatch?

    init(entries: [Entry]) {
        self.entries = entries
    }

    /// Reads `file` and re-reads it on SIGHUP (applied on `reactor`'s thread).
    convenience init(file: URL, reactor: Reactor, logger: Logger) throws {
        self.init(entries: try Self.read(file))
        let target = ReactorBound(self, on: reactor)
        reload = try SignalWatch([SIGHUP]) { _ in
            do {
                let entries = try Self.read(file)
                target.post { $0.replace(entries) }
                logger.notice("resp.passwords.reloaded", metadata: ["resp.passwords": "\(file.path)", "resp.entries": "\(entries.count)"])
            } catch {
                logger.error("resp.passwords.reload_failed", metadata: ["resp.error": "\(error)"])
            }
        }
    }

    deinit { reload?.cancel() }

    /// The entry `password` (and `user`, when given) matches; compared in
    /// constant time.
    func check(user: String?, password: [UInt8]) -> Entry? {
        // Redis's own user is "default": clients send it with a bare password.
        let user = user == "default" ? nil : user
        var found: Entry?
        for entry in entries where user == nil || entry.name == user {
            if ConstantTime.equal(entry.password, password) && found == nil { found = entry }
        }
        return found
    }

    func replace(_ new: [Entry]) {
        let kept = Set(new.map { $0.name + "\u{0}" + String(decoding: $0.password, as: UTF8.self) })
        let removed = Set(entries.filter { !kept.contains($0.name + "\u{0}" + String(decoding: $0.password, as: UTF8.self)) }.map(\.name))
        entries = new
        if !removed.isEmpty { onRevoked(removed) }
    }

    /// The entries in `file`; throws naming the file and line that is wrong.
    static func read(_ file: URL) throws -> [Entry] {
        try parse(try KeyFiles.readSecret(file), source: file.path)
    }

    static func parse(_ text: String, source: String) throws -> [Entry] {
        var entries: [Entry] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).prefix { !$0.hasPrefix("#") }
            guard !fields.isEmpty else { continue }
            guard fields.count >= 2, fields.count <= 3 else {
                throw PasswordFileError("\(source):\(number + 1): expected ROLE PASSWORD [NAME], found \(fields.count) fields")
            }
            guard let role = Allowlist.Role(rawValue: String(fields[0])) else {
                throw PasswordFileError("\(source):\(number + 1): unknown role '\(fields[0])' (client, node or admin)")
            }
            guard fields[1].utf8.count >= 8 else {
                throw PasswordFileError("\(source):\(number + 1): a password needs at least 8 characters")
            }
            entries.append(Entry(role: role, name: fields.count == 3 ? String(fields[2]) : "\(role)-\(number + 1)",
                                 password: Array(fields[1].utf8)))
        }
        return entries
    }
}

struct PasswordFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
