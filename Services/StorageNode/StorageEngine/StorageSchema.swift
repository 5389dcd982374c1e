/// The engine's tables and statements, and how unsigned values map onto SQLite integers.
///
/// `records` is a `WITHOUT ROWID` table clustered on `(position, key)`, so the rows of
/// a ring arc are one contiguous range of the B-tree and a point read is one lookup.
/// A tombstone is a row whose `value` is NULL (an empty value is an empty blob).
/// `ts` and `writer` hold a version's unsigned 64-bit parts with the sign bit flipped
/// (see ``stored(_:)``), so SQLite's signed comparison orders them as unsigned numbers.
/// `fence_name` and `fence_token` hold the lock a fenced write was made under (NULL for
/// an unfenced one); records and hints carry it wherever they travel.
enum StorageSchema {
    /// The `user_version` of databases this code writes; a larger one is refused.
    /// 1: no fence columns on records and hints (upgraded in place by ``upgrades``).
    /// 2: no totals tables and triggers (``create`` adds them; ``totalsFill`` counts once).
    /// 3: insert and update triggers on `records` (dropped: ``StorageEngine/apply(_:)``
    ///    now adds each batch's change to the totals once, in its transaction).
    static let version: Int64 = 4

    /// Statements that bring a database of an older `user_version` (the key) to the next one.
    static let upgrades: [Int64: String] = [
        1: """
            ALTER TABLE records ADD COLUMN fence_name TEXT;
            ALTER TABLE records ADD COLUMN fence_token INTEGER;
            ALTER TABLE hints ADD COLUMN fence_name TEXT;
            ALTER TABLE hints ADD COLUMN fence_token INTEGER;
            """,
        3: """
            DROP TRIGGER IF EXISTS records_totals_insert;
            DROP TRIGGER IF EXISTS records_totals_update;
            """,
    ]

    /// Creates the tables and indices if absent.
    static let create = """
        CREATE TABLE IF NOT EXISTS records (
            position INTEGER NOT NULL,
            key BLOB NOT NULL,
            value BLOB,
            ts INTEGER NOT NULL,
            writer INTEGER NOT NULL,
            fence_name TEXT,
            fence_token INTEGER,
            PRIMARY KEY (position, key)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS records_tombstones ON records (ts) WHERE value IS NULL;
        CREATE TABLE IF NOT EXISTS hints (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            target TEXT NOT NULL,
            position INTEGER NOT NULL,
            key BLOB NOT NULL,
            value BLOB,
            ts INTEGER NOT NULL,
            writer INTEGER NOT NULL,
            fence_name TEXT,
            fence_token INTEGER
        );
        CREATE INDEX IF NOT EXISTS hints_by_target ON hints (target, id);
        CREATE TABLE IF NOT EXISTS migration_cursors (
            transfer_id INTEGER PRIMARY KEY,
            arc_index INTEGER NOT NULL,
            position INTEGER,
            key BLOB,
            keys INTEGER NOT NULL,
            bytes INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS fences (
            key BLOB NOT NULL,
            name TEXT NOT NULL,
            token INTEGER NOT NULL,
            PRIMARY KEY (key, name)
        ) WITHOUT ROWID;
        \(totalsCreate)
        """

    // MARK: Totals

    /// What `records` and `hints` hold, kept up to date in the transaction of
    /// every write, so reading them costs one row whatever the size of the data
    /// (and they survive a restart with the rows they count). Merges into
    /// `records` add their batch's change once (``addToTotals``: a per-row
    /// trigger cost a fifth of the write path); deletes and hints use triggers.
    /// `record_totals` has the single row `id = 1` once ``totalsFill`` ran.
    static let totalsCreate = """
        CREATE TABLE IF NOT EXISTS record_totals (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            live_keys INTEGER NOT NULL,
            tombstones INTEGER NOT NULL,
            value_bytes INTEGER NOT NULL,
            key_bytes INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS hint_totals (
            target TEXT PRIMARY KEY,
            hints INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TRIGGER IF NOT EXISTS records_totals_delete AFTER DELETE ON records BEGIN
            UPDATE record_totals SET
                live_keys = live_keys - (OLD.value IS NOT NULL),
                tombstones = tombstones - (OLD.value IS NULL),
                value_bytes = value_bytes - ifnull(length(OLD.value), 0),
                key_bytes = key_bytes - length(OLD.key)
            WHERE id = 1;
        END;
        CREATE TRIGGER IF NOT EXISTS hints_totals_insert AFTER INSERT ON hints BEGIN
            INSERT INTO hint_totals (target, hints) VALUES (NEW.target, 1)
            ON CONFLICT (target) DO UPDATE SET hints = hints + 1;
        END;
        CREATE TRIGGER IF NOT EXISTS hints_totals_delete AFTER DELETE ON hints BEGIN
            UPDATE hint_totals SET hints = hints - 1 WHERE target = OLD.target;
            DELETE FROM hint_totals WHERE target = OLD.target AND hints <= 0;
        END;
        """

    /// Adds a merged batch's change (live keys, tombstones, value bytes, key bytes) to the totals.
    static let addToTotals = """
        UPDATE record_totals SET live_keys = live_keys + ?1, tombstones = tombstones + ?2,
            value_bytes = value_bytes + ?3, key_bytes = key_bytes + ?4
        WHERE id = 1
        """

    /// Whether the totals were filled (a database created before them has none yet).
    static let totalsFilled = "SELECT count(*) FROM record_totals"

    /// Fills the totals from the rows, once: on a new database that is nothing
    /// to count; on one that predates them, one scan at open.
    static let totalsFill = """
        INSERT INTO record_totals (id, live_keys, tombstones, value_bytes, key_bytes)
        SELECT 1, count(value), count(*) - count(value), ifnull(sum(length(value)), 0), ifnull(sum(length(key)), 0)
        FROM records;
        DELETE FROM hint_totals;
        INSERT INTO hint_totals (target, hints) SELECT target, count(*) FROM hints GROUP BY target;
        """

    // MARK: Migration cursors

    static let upsertCursor = """
        INSERT INTO migration_cursors (transfer_id, arc_index, position, key, keys, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
        ON CONFLICT (transfer_id) DO UPDATE SET arc_index = excluded.arc_index, position = excluded.position,
            key = excluded.key, keys = excluded.keys, bytes = excluded.bytes
        """
    static let selectCursor = "SELECT arc_index, position, key, keys, bytes FROM migration_cursors WHERE transfer_id = ?1"
    static let selectCursorIDs = "SELECT transfer_id FROM migration_cursors"
    static let deleteCursor = "DELETE FROM migration_cursors WHERE transfer_id = ?1"

    // MARK: Fences

    static let selectFence = "SELECT token FROM fences WHERE key = ?1 AND name = ?2"
    static let selectKeyFences = "SELECT name, token FROM fences WHERE key = ?1"
    static let upsertFence = """
        INSERT INTO fences (key, name, token) VALUES (?1, ?2, ?3)
        ON CONFLICT (key, name) DO UPDATE SET token = max(token, excluded.token)
        """

    // MARK: Records

    /// Merges one record: inserts it, or replaces the stored row only when the new record
    /// wins by the rule of ``VersionedRecord/merged(with:)``: of two records fenced by the
    /// same lock the higher token, otherwise the greater version (equal versions: greater
    /// content). `sqlite3_changes()` is 1 when the record was written, 0 when the stored row won.
    /// (`NULL = NULL` is not true, so unfenced rows fall to the version rule.)
    static let upsertRecord = """
        INSERT INTO records (position, key, value, ts, writer, fence_name, fence_token) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        ON CONFLICT (position, key) DO UPDATE
        SET value = excluded.value, ts = excluded.ts, writer = excluded.writer,
            fence_name = excluded.fence_name, fence_token = excluded.fence_token
        WHERE CASE
            WHEN excluded.fence_name = records.fence_name AND excluded.fence_token <> records.fence_token
                THEN excluded.fence_token > records.fence_token
            ELSE excluded.ts > records.ts
               OR (excluded.ts = records.ts AND (excluded.writer > records.writer
                   OR (excluded.writer = records.writer AND excluded.value IS NOT NULL
                       AND (records.value IS NULL OR excluded.value > records.value))))
            END
        """

    /// The stored version of one key and its value's size (NULL for a tombstone), read
    /// before a merge: the totals' change when the merge replaces it, the version that
    /// won when it does not. (`length` of a blob reads no overflow pages.)
    static let selectStored = "SELECT ts, writer, length(value) FROM records WHERE position = ?1 AND key = ?2"

    /// One key's value, version and fence, in the order ``StorageEngine`` reads them.
    static let selectRecord = "SELECT value, ts, writer, fence_name, fence_token FROM records WHERE position = ?1 AND key = ?2"

    /// Columns of a full record, in the order ``SQLiteStatement/record(at:)`` reads them.
    static let recordColumns = "position, key, value, ts, writer, fence_name, fence_token"

    /// Records with positions in `?1...?2`, in ring order, at most `?3`.
    static let scanRange = """
        SELECT \(recordColumns) FROM records WHERE position >= ?1 AND position <= ?2
        ORDER BY position, key LIMIT ?3
        """

    /// Records after `(?1, ?2)` with positions up to `?3`, in ring order, at most `?4`.
    static let scanAfter = """
        SELECT \(recordColumns) FROM records WHERE (position, key) > (?1, ?2) AND position <= ?3
        ORDER BY position, key LIMIT ?4
        """

    /// Rows, tombstones and key plus value bytes with positions in `?1...?2`; the bytes
    /// are ``VersionedRecord/byteSize`` summed in SQL.
    static let countRange = """
        SELECT count(*), count(*) - count(value), ifnull(sum(length(key) + ifnull(length(value), 0)), 0)
        FROM records WHERE position >= ?1 AND position <= ?2
        """

    /// Deletes the rows with positions in `?1...?2`.
    static let deleteRange = "DELETE FROM records WHERE position >= ?1 AND position <= ?2"

    /// Deletes tombstones whose timestamp is below `?1` (through the partial index).
    static let purgeTombstones = "DELETE FROM records WHERE value IS NULL AND ts < ?1"

    /// Live keys, tombstones, value bytes and key bytes of the whole table (kept by triggers).
    static let totals = "SELECT live_keys, tombstones, value_bytes, key_bytes FROM record_totals WHERE id = 1"

    /// The same four figures counted from the rows: what ``totals`` must always equal.
    static let totalsCounted = """
        SELECT count(value), count(*) - count(value), ifnull(sum(length(value)), 0), ifnull(sum(length(key)), 0)
        FROM records
        """

    /// The size of the database file in bytes.
    static let fileSize = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"

    /// Copies the write-ahead log into the database file and truncates it.
    static let checkpoint = "PRAGMA wal_checkpoint(TRUNCATE)"

    // MARK: Hints

    /// Stores one hint for target `?1`.
    static let insertHint = """
        INSERT INTO hints (target, position, key, value, ts, writer, fence_name, fence_token)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
        """

    /// A target's hints with ids above `?2`, oldest first, at most `?3`.
    static let selectHints = """
        SELECT id, \(recordColumns) FROM hints WHERE target = ?1 AND id > ?2 ORDER BY id LIMIT ?3
        """

    /// Deletes one hint by id.
    static let deleteHint = "DELETE FROM hints WHERE id = ?1"

    /// Deletes every hint of target `?1`.
    static let deleteTargetHints = "DELETE FROM hints WHERE target = ?1"

    /// Pending hints per target.
    static let countHints = "SELECT target, hints FROM hint_totals"

    /// Pending hints per target counted from the rows: what ``countHints`` must always equal.
    static let countHintsCounted = "SELECT target, count(*) FROM hints GROUP BY target"

    // MARK: Transactions

    /// Starts a write transaction, taking the write lock at once.
    static let begin = "BEGIN IMMEDIATE"
    /// Commits the open transaction.
    static let commit = "COMMIT"
    /// Abandons the open transaction.
    static let rollback = "ROLLBACK"

    // MARK: Unsigned integers

    /// The SQLite integer storing `value`: its bits with the sign bit flipped, so that signed
    /// order of stored integers is unsigned order of values.
    static func stored(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value ^ (1 << 63))
    }

    /// The unsigned value of a stored integer; the inverse of ``stored(_:)``.
    static func unsigned(_ stored: Int64) -> UInt64 {
        UInt64(bitPattern: stored) ^ (1 << 63)
    }
}
