import Foundation
import RPC
import RingProtocol
import StorageEngine

/// Network-level group commit for a coordinator: the replica writes and reads
/// bound for each peer during one reactor turn, sent at the turn's end
/// (``flush()``) as one ReplicaWrite and one ReplicaRead per peer, which the
/// peer applies in one commit (or reads in one database access). Each queued
/// item keeps its own completion: its answer from the batch's reply, or the
/// error of the whole call. Used on the node's reactor thread only.
final class ReplicaOutbox {
    /// What a replica answered for one record of a batched ReplicaWrite.
    struct WriteAnswer {
        /// For a fenced record refused as stale: the highest token the replica saw (else 0).
        var refusedBelow: UInt64 = 0
        /// The replica, on a newer plan, keeps no copy of the key and did not store it.
        var notReplica = false
        var planVersion: UInt64 = 0
    }

    /// Records per batched ReplicaWrite, at most.
    static let writeBatchRecords = 1_024
    /// Keys per batched ReplicaRead, at most: the reply carries their values,
    /// so this bounds it (128 values of up to maxValueBytes each).
    static let readBatchKeys = 128

    private let peers: PeerClients
    private let timeout: Duration
    /// Bytes of keys, values and per-record overhead in one ReplicaWrite, at most.
    private let writeBudget: Int
    /// Sends one ReplicaWrite: records, replica, the plan version they were routed by.
    private let send: ([VersionedRecord], String, UInt64, @escaping (Result<WireReplicaWriteReply, RPCError>) -> Void) -> Void
    private var writes: [String: [(record: VersionedRecord, plan: UInt64, done: (Result<WriteAnswer, RPCError>) -> Void)]] = [:]
    private var reads: [String: [(key: [UInt8], done: (Result<WireReplicaReadAnswer, RPCError>) -> Void)]] = [:]

    /// - Parameter maxValueBytes: The peers' value limit; they accept messages up to
    ///   maxValueBytes + maxKeyBytes + 64 KiB, so a batch holds at most this many bytes.
    init(peers: PeerClients, timeout: Duration, maxValueBytes: Int,
         send: @escaping ([VersionedRecord], String, UInt64, @escaping (Result<WireReplicaWriteReply, RPCError>) -> Void) -> Void) {
        self.peers = peers
        self.timeout = timeout
        self.send = send
        writeBudget = max(maxValueBytes, 64 << 10)
    }

    /// Queues `record`, routed by plan version `plan`, for `replica`; `done` gets the
    /// replica's answer for it, or the error of the whole call, on the reactor thread.
    func write(_ record: VersionedRecord, to replica: String, plan: UInt64,
               done: @escaping (Result<WriteAnswer, RPCError>) -> Void) {
        writes[replica, default: []].append((record, plan, done))
    }

    /// Queues a read of `key` from `replica`; `done` gets its answer, or the
    /// error of the whole call, on the reactor thread.
    func read(_ key: [UInt8], from replica: String, done: @escaping (Result<WireReplicaReadAnswer, RPCError>) -> Void) {
        reads[replica, default: []].append((key, done))
    }

    /// Sends this turn's queued reads and writes, one message per peer for each
    /// (several when a batch would pass the size budget or the record cap).
    func flush() {
        flushReads()
        flushWrites()
    }

    /// A lone key goes as a plain ReplicaRead, several as one batch (at most `readBatchKeys` each).
    private func flushReads() {
        guard !reads.isEmpty else { return }
        let outbox = reads
        reads.removeAll(keepingCapacity: true)
        for (replica, items) in outbox {
            guard let client = peers.client(for: replica) else {
                for item in items { item.done(.failure(.unavailable("no client for \(replica)"))) }
                continue
            }
            for start in stride(from: 0, to: items.count, by: Self.readBatchKeys) {
                let batch = Array(items[start..<min(start + Self.readBatchKeys, items.count)])
                let request = WireReplicaReadRequest.with { request in
                    if batch.count == 1 { request.key = Data(batch[0].key) } else { request.keys = batch.map { Data($0.key) } }
                }
                client.call(StorageMethods.replicaRead, request, timeout: timeout) { result in
                    switch result {
                    case .success(let reply) where batch.count == 1:
                        batch[0].done(.success(WireReplicaReadAnswer.with { $0.found = reply.found; $0.record = reply.record }))
                    case .success(let reply) where reply.answers.count == batch.count:
                        for (item, answer) in zip(batch, reply.answers) { item.done(.success(answer)) }
                    case .success(let reply):
                        let error = RPCError.internalError("\(reply.answers.count) answers to a batch of \(batch.count) keys")
                        for item in batch { item.done(.failure(error)) }
                    case .failure(let error):
                        for item in batch { item.done(.failure(error)) }
                    }
                }
            }
        }
    }

    private func flushWrites() {
        guard !writes.isEmpty else { return }
        let outbox = writes
        writes.removeAll(keepingCapacity: true)
        for (replica, items) in outbox {
            var start = 0
            while start < items.count {
                var end = start
                var bytes = 0
                while end < items.count && end - start < Self.writeBatchRecords {
                    let cost = items[end].record.approximateBytes
                    if end > start && bytes + cost > writeBudget { break }
                    bytes += cost
                    end += 1
                }
                let batch = Array(items[start..<end])
                start = end
                // The oldest plan of the batch: the replica then refuses what it no longer
                // keeps, and whatever was routed by a newer plan it keeps anyway.
                let plan = batch.lazy.map(\.plan).min() ?? 0
                send(batch.map(\.record), replica, plan) { result in
                    switch result {
                    case .success(let reply):
                        for (index, item) in batch.enumerated() {
                            item.done(.success(WriteAnswer(
                                refusedBelow: index < reply.refusedBelow.count ? reply.refusedBelow[index] : 0,
                                notReplica: index < reply.notReplica.count ? reply.notReplica[index] : false,
                                planVersion: reply.planVersion)))
                        }
                    case .failure(let error):
                        for item in batch { item.done(.failure(error)) }
                    }
                }
            }
        }
    }
}

extension VersionedRecord {
    /// The bytes this record takes in a message, roughly: key, value, fence name and 64 for the rest.
    var approximateBytes: Int { byteSize + (fence?.name.utf8.count ?? 0) + 64 }
}
