import MagnitudePasses
import PruneIR
import Testing

@testable import PruneKit

/// Allocation of a pruning target over groups: per layer or global, with floors and caps.
@Suite struct UnitSelectionTests {
    /// Two groups: 10 cheap units (10 params each) and 20 dear ones (100 each); scores rise with
    /// the unit index.
    static let counts = [10, 20]
    static let candidates: [UnitSelection.Candidate] =
        (0 ..< 10).map { .init(group: 0, unit: $0, score: Double($0 + 1), params: 10, macs: 1) }
        + (0 ..< 20).map { .init(group: 1, unit: $0, score: Double($0 + 1) * 0.1, params: 100, macs: 1) }
    static let total = 10 * 10 + 20 * 100

    static func select(_ t: PruningTarget) throws -> [[Bool]] {
        try UnitSelection.select(unitCounts: counts, names: ["cheap", "dear"], candidates: candidates, target: t,
                                 totalParams: total, totalMACs: 30)
    }

    static func removed(_ keep: [[Bool]]) -> [Int] { keep.map { $0.filter { !$0 }.count } }

    @Test func perLayerParamsTargetUsesOneFractionForEveryGroup() throws {
        let keep = try Self.select(PruningTarget(measure: .params, amount: 0.3, global: false))
        let r = Self.removed(keep)
        let params = r[0] * 10 + r[1] * 100
        // One fraction f for both groups: round(10 f) and round(20 f) units, the params reached.
        #expect(params >= Int(0.3 * Double(Self.total) * 0.999))
        #expect(abs(Double(r[0]) / 10 - Double(r[1]) / 20) <= 0.1)
        #expect(r == [3, 6])
        // The lowest scores of each group go.
        #expect(keep[0].prefix(3).allSatisfy { !$0 } && keep[1].prefix(6).allSatisfy { !$0 })
    }

    @Test func globalParamsTargetPrefersTheLowestNormalizedScores() throws {
        let r = Self.removed(try Self.select(PruningTarget(measure: .params, amount: 0.3, global: true)))
        #expect(r[0] * 10 + r[1] * 100 >= 630)
        // Scores are divided by their group's mean, so both groups compete on equal terms.
        #expect(r[0] >= 1 && r[1] >= 5)
    }

    @Test func floorsHoldInBothScopes() throws {
        for global in [false, true] {
            let t = PruningTarget(measure: .sparsity, amount: global ? 0.7 : 0.85, global: global, maxPerGroup: 1, minKeep: 3)
            if global {
                let r = Self.removed(try Self.select(t))
                #expect(r[0] <= 7 && r[1] <= 17 && r[0] + r[1] == 21)
            } else {
                // 85% of 10 is 9 (more than the floor allows): per layer, that is an error naming the group.
                #expect { try Self.select(t) } throws: { "\($0)".contains("cheap") }
            }
        }
        let capped = Self.removed(try Self.select(PruningTarget(measure: .params, amount: 0.5, global: false, maxPerGroup: 0.5, minKeep: 1)))
        #expect(capped == [5, 10])
    }

    @Test func anUnreachableTargetSaysHowFarItGets() throws {
        #expect {
            try Self.select(PruningTarget(measure: .params, amount: 0.95, global: false, maxPerGroup: 0.5))
        } throws: { "\($0)".contains("cannot be reached") }
    }

    @Test func scopeAutoIsLayerForSparsityAndGlobalForParams() throws {
        var registry = PassRegistry()
        registry.register(MagnitudePass.self)
        func target(_ text: String) throws -> PruningTarget {
            let pipeline = "magnitude{\(text)}"
            return try #require(try registry.instantiate(try Pipeline.parse(pipeline), text: pipeline).first as? MagnitudePass).options.target
        }
        #expect(try target("sparsity=0.2").global == false)
        #expect(try target("params=0.2").global == true)
        #expect(try target("params=0.2,scope=layer").global == false)
        #expect(try target("sparsity=0.2,scope=global").global == true)
        #expect(try target("min-keep=2").minKeep == 2)
        #expect { try target("min-keep=0") } throws: { "\($0)".contains("kinds=blocks") }
    }
}
