import Foundation
import Basics
import PlacementService
import RingProtocol
import Testing
import TestKit

@Suite struct PlacementStoreTests {
    func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("placement-store-\(UUID().uuidString)")
    }

    @Test func aNewDirectoryHasNoState() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(try PlacementStore(directory: directory).load() == nil)
    }

    @Test func savedStateSurvivesReopening() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var membership = Membership()
        let now = ServiceTime(monotonic: .zero, wallMicros: 1)
        _ = try membership.join(address: "10.0.0.1:7501", weight: 3, now: now)
        _ = try membership.join(address: "10.0.0.2:7501", weight: 1, now: now)
        try PlacementStore(directory: directory).save(membership.persisted)
        let loaded = try #require(try PlacementStore(directory: directory).load())
        #expect(loaded == membership.persisted)
        #expect(loaded.epoch == 2)
        // A second save replaces the first atomically (no temporary file left behind).
        _ = try membership.remove(address: "10.0.0.2:7501", force: true, now: now)
        try PlacementStore(directory: directory).save(membership.persisted)
        #expect(try PlacementStore(directory: directory).load()?.members.count == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files == ["placement.pb"])
    }

    @Test func aCorruptFileIsAnErrorNotAnEmptyCluster() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try PlacementStore(directory: directory)
        try Data([0xFF, 0xFF, 0xFF, 0x01]).write(to: directory.appendingPathComponent("placement.pb"))
        #expect(throws: (any Error).self) { try store.load() }
    }
}
