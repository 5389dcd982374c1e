import Ring
import Testing
import TestKit

@Suite struct RingSegmentsTests {
    @Test(arguments: [1, 3, 5])
    func segmentsCoverTheRingWithTheirPreferenceLists(replicas: Int) throws {
        let members = try (1...7).map { try RingMember(address: "10.0.0.\($0):7501", weight: $0 % 3 + 1) }
        let ring = try HashRing(members: members, density: 10)
        let segments = try ring.segments(replicas: replicas)
        #expect(segments.first?.range.lowerBound == 0 && segments.last?.range.upperBound == .max)
        for (previous, next) in zip(segments, segments.dropFirst()) {
            #expect(previous.range.upperBound &+ 1 == next.range.lowerBound)
            #expect(previous.replicas != next.replicas)
        }
        // Both ends and random positions of every segment have its list.
        var generator = SeededGenerator(seed: 7)
        for segment in segments {
            let inside = UInt32.random(in: segment.range, using: &generator)
            for position in [segment.range.lowerBound, segment.range.upperBound, inside] {
                #expect(try ring.preferenceList(forPosition: position, replicas: replicas) == segment.replicas)
            }
        }
        #expect(throws: RingError.self) { try ring.segments(replicas: 0) }
    }
}
