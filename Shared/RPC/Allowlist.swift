import ZeroMQ

/// Who may connect to a service, and what each may do: public keys with a
/// role and a name, read from a text file, one key per line:
///
///     # role   public key (Z85, 40 characters)            name
///     admin    rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7   ops-laptop
///     node     Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID   node-1
///     client   ...                                        billing-app
///
/// Blank lines and comments (from a word starting with `#` to the end of the
/// line) are ignored. A key appears once.
public struct Allowlist: Sendable, Equatable {
    /// What a key may do. `client`: data and locks, watch. `node`: the
    /// traffic between services as well. `admin`: everything.
    public enum Role: String, Sendable, CaseIterable, Comparable {
        case client, node, admin

        /// Whether a peer with this role may call a method that needs `needed`.
        public func allows(_ needed: Role) -> Bool { self >= needed }

        public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
        private var rank: Int {
            switch self {
            case .client: 0
            case .node: 1
            case .admin: 2
            }
        }
    }

    public struct Entry: Sendable, Equatable {
        public let key: CurveKey
        public let role: Role
        /// For logs: whose key this is.
        public let name: String

        public init(key: CurveKey, role: Role, name: String) {
            self.key = key
            self.role = role
            self.name = name
        }
    }

    public private(set) var entries: [CurveKey: Entry] = [:]

    public init(_ entries: [Entry] = []) {
        for entry in entries { self.entries[entry.key] = entry }
    }

    /// The entry of `key`, or nil for a key that may not connect.
    public func entry(for key: CurveKey) -> Entry? { entries[key] }

    /// The allowlist `text` spells; throws naming the first bad line.
    public init(parsing text: String) throws(AllowlistError) {
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            // A comment starts with a field that starts with `#` (Z85 keys may hold `#`).
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).prefix { !$0.hasPrefix("#") }
            guard !fields.isEmpty else { continue }
            guard fields.count >= 2, fields.count <= 3 else {
                throw AllowlistError(line: number, "expected ROLE PUBLIC-KEY [NAME], found \(fields.count) fields")
            }
            guard let role = Role(rawValue: String(fields[0])) else {
                throw AllowlistError(line: number, "unknown role '\(fields[0])' (client, node or admin)")
            }
            guard let key = CurveKey(fields[1]) else {
                throw AllowlistError(line: number, "'\(fields[1])' is not a CURVE public key (40 characters of Z85)")
            }
            guard entries[key] == nil else { throw AllowlistError(line: number, "key \(key) is listed twice") }
            entries[key] = Entry(key: key, role: role, name: fields.count == 3 ? String(fields[2]) : String(key.z85.prefix(8)))
        }
    }
}

/// A malformed allowlist line.
public struct AllowlistError: Error, Equatable, Sendable, CustomStringConvertible {
    public let line: Int
    public let message: String

    init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "allowlist line \(line): \(message)" }
}
