import RESP
import RPC
import RingProtocol
import StorageEngine

/// The data commands: each is one or more quorum reads and writes through the
/// coordinator, answered when they finish. Commands that read and then write
/// (SET with GET or XX, GETDEL, DEL's count) make the write conditional on the
/// version read, so a concurrent change is not overwritten silently; they are
/// not transactions.
extension RESPFrontDoor {
    typealias Write = Replication<Coordinator.ClientReply>.Write

    func get(_ connection: RESPConnection, _ key: [UInt8]) {
        let slot = connection.reserve()
        read(key) { result in
            connection.complete(slot, connection.encode { writer in
                switch result {
                case .success(let record): Self.writeValue(record, into: &writer)
                case .failure(let error): writer.error(Self.message(error))
                }
            })
        }
    }

    func strlen(_ connection: RESPConnection, _ key: [UInt8]) {
        let slot = connection.reserve()
        read(key) { result in
            connection.complete(slot, connection.encode { writer in
                switch result {
                case .success(let record): writer.integer(record?.value?.count ?? 0)
                case .failure(let error): writer.error(Self.message(error))
                }
            })
        }
    }

    /// SET key value [NX | XX] [GET]; EX, PX, EXAT, PXAT and KEEPTTL are
    /// refused: Ringstore keeps no expiry times.
    func set(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        let key = arguments[0], value = arguments[1]
        var onlyIfAbsent = false, onlyIfPresent = false, returnOld = false
        for option in arguments.dropFirst(2).map({ Self.text($0).uppercased() }) {
            switch option {
            case "NX": onlyIfAbsent = true
            case "XX": onlyIfPresent = true
            case "GET": returnOld = true
            case "EX", "PX", "EXAT", "PXAT", "KEEPTTL":
                connection.reply { $0.error("ERR \(option) is not supported: Ringstore keeps no expiry times (keys live until deleted)") }
                return
            default:
                connection.reply { $0.error("ERR syntax error") }
                return
            }
        }
        guard !(onlyIfAbsent && onlyIfPresent) else {
            connection.reply { $0.error("ERR syntax error") }
            return
        }
        let slot = connection.reserve()
        let finish = { (result: Result<VersionedRecord?, RPCError>, wrote: Bool) in
            connection.complete(slot, connection.encode { writer in
                switch result {
                case .failure(let error): writer.error(Self.message(error))
                case .success(let old) where returnOld: Self.writeValue(old, into: &writer)
                case .success: wrote ? writer.simple("OK") : writer.null()
                }
            })
        }
        guard returnOld || onlyIfPresent else {
            // The common SET: one quorum write (NX: only where no live value is).
            var write = Write(key: key, value: value)
            write.ifAbsent = onlyIfAbsent
            coordinator.write(write) { result in
                switch result {
                case .success: finish(.success(nil), true)
                case .failure(let error) where error.code == .failedPrecondition && onlyIfAbsent: finish(.success(nil), false)
                case .failure(let error): finish(.failure(error), false)
                }
            }
            return
        }
        readThenWrite(key, attempts: 3, decide: { old in
            if onlyIfAbsent && old != nil { return nil }
            if onlyIfPresent && old == nil { return nil }
            return value
        }, done: finish)
    }

    func getDelete(_ connection: RESPConnection, _ key: [UInt8]) {
        let slot = connection.reserve()
        readThenWrite(key, attempts: 3, decide: { old in old == nil ? nil : .some(nil) }) { result, _ in
            connection.complete(slot, connection.encode { writer in
                switch result {
                case .success(let old): Self.writeValue(old, into: &writer)
                case .failure(let error): writer.error(Self.message(error))
                }
            })
        }
    }

    /// DEL key...: the number of keys that existed (and are now deleted).
    func delete(_ connection: RESPConnection, _ keys: [[UInt8]]) {
        let slot = connection.reserve()
        gather(keys, each: { key, done in
            self.readThenWrite(key, attempts: 3, decide: { old in old == nil ? nil : .some(nil) }) { result, wrote in
                done(result.map { _ in wrote ? 1 : 0 })
            }
        }, done: { results in
            connection.complete(slot, connection.encode { writer in
                if let error = Self.firstFailure(results) { writer.error(Self.message(error)) } else { writer.integer(Self.successes(results).reduce(0, +)) }
            })
        })
    }

    /// EXISTS key...: how many exist (a key named twice counts twice).
    func exists(_ connection: RESPConnection, _ keys: [[UInt8]]) {
        let slot = connection.reserve()
        gather(keys, each: { key, done in
            self.read(key) { result in done(result.map { $0?.value == nil ? 0 : 1 }) }
        }, done: { results in
            connection.complete(slot, connection.encode { writer in
                if let error = Self.firstFailure(results) { writer.error(Self.message(error)) } else { writer.integer(Self.successes(results).reduce(0, +)) }
            })
        })
    }

    func multiGet(_ connection: RESPConnection, _ keys: [[UInt8]]) {
        let slot = connection.reserve()
        gather(keys, each: { key, done in self.read(key, done: done) }, done: { results in
            connection.complete(slot, connection.encode { writer in
                if let error = Self.firstFailure(results) {
                    writer.error(Self.message(error))
                    return
                }
                writer.arrayHeader(results.count)
                for record in Self.successes(results) { Self.writeValue(record, into: &writer) }
            })
        })
    }

    /// MSET key value...: every pair written with its own quorum, OK when all
    /// are; the first failure otherwise (the pairs written before it stay).
    func multiSet(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        guard arguments.count % 2 == 0 else {
            connection.reply { $0.error("ERR wrong number of arguments for 'mset' command") }
            return
        }
        let slot = connection.reserve()
        let pairs = stride(from: 0, to: arguments.count, by: 2).map { (arguments[$0], arguments[$0 + 1]) }
        gather(pairs, each: { pair, done in
            self.coordinator.write(Write(key: pair.0, value: pair.1)) { result in done(result.map { _ in () }) }
        }, done: { results in
            connection.complete(slot, connection.encode { writer in
                if let error = Self.firstFailure(results) { writer.error(Self.message(error)) } else { writer.simple("OK") }
            })
        })
    }

    // MARK: Helpers

    /// A quorum read at the node's defaults; the newest record the quorum held.
    func read(_ key: [UInt8], done: @escaping (Result<VersionedRecord?, RPCError>) -> Void) {
        coordinator.read(key: key) { result in done(result.map(\.record)) }
    }

    /// Reads `key`, lets `decide` choose what to write (a value, `.some(nil)`
    /// for a delete, nil for nothing) and writes it only if the key is still
    /// at the version read; retried on a concurrent change. `done` gets the
    /// value read and whether it wrote.
    func readThenWrite(_ key: [UInt8], attempts: Int, decide: @escaping ([UInt8]?) -> [UInt8]??,
                       done: @escaping (Result<VersionedRecord?, RPCError>, Bool) -> Void) {
        read(key) { [weak self] result in
            guard let self else { return }
            guard case .success(let record) = result else {
                done(result, false)
                return
            }
            let live = record?.value == nil ? nil : record
            guard let next = decide(live?.value) else {
                done(.success(live), false)
                return
            }
            var write = Write(key: key, value: next)
            if let record { write.ifVersion = record.version } else { write.ifAbsent = true }
            coordinator.write(write) { outcome in
                switch outcome {
                case .success: done(.success(live), true)
                case .failure(let error) where error.code == .failedPrecondition && attempts > 1:
                    self.readThenWrite(key, attempts: attempts - 1, decide: decide, done: done)
                case .failure(let error): done(.failure(error), false)
                }
            }
        }
    }

    /// Runs `each` for every item at once and calls `done` with the results in order.
    func gather<Item, Value>(_ items: [Item], each: (Item, @escaping (Result<Value, RPCError>) -> Void) -> Void,
                             done: @escaping ([Result<Value, RPCError>]) -> Void) {
        var results = [Result<Value, RPCError>?](repeating: nil, count: items.count)
        var waiting = items.count
        for (index, item) in items.enumerated() {
            each(item) { result in
                results[index] = result
                waiting -= 1
                if waiting == 0 { done(results.map { $0! }) }
            }
        }
    }

    static func writeValue(_ record: VersionedRecord?, into writer: inout RESPWriter) {
        if let value = record?.value { writer.bulk(value) } else { writer.null() }
    }

    /// A coordinator error as Redis clients expect one: TRYAGAIN when a
    /// quorum could not be met (retrying may work), ERR otherwise.
    static func message(_ error: RPCError) -> String {
        switch error.code {
        case .unavailable, .deadlineExceeded: return "TRYAGAIN \(error.message)"
        default: return "ERR \(error.message)"
        }
    }

    static func firstFailure<Value>(_ results: [Result<Value, RPCError>]) -> RPCError? {
        for result in results { if case .failure(let error) = result { return error } }
        return nil
    }

    static func successes<Value>(_ results: [Result<Value, RPCError>]) -> [Value] {
        results.compactMap { try? $0.get() }
    }
}
