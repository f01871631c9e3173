import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

@testable import PruneKit

/// Heads of grouped-query and multi-query decoders (examples/models/corpus): kv groups by default,
/// query heads with `queryHeads`, the per-use Gather that folding inserts, and the fold of masks
/// set per query head, each checked against the masked model on the interpreter at two lengths.
@Suite struct GroupedQueryAttentionTests {
    static let corpus = TestPaths.examples.appendingPathComponent("corpus")

    static func inputs(sequence: Int, seed: UInt64) -> [String: NDArray] {
        var rng = SeededRandom(seed)
        let ids = (0 ..< sequence).map { _ in Int64(rng.int(below: 256)) }
        return ["input_ids": NDArray(ids, shape: [1, sequence]), "attention_mask": NDArray([Int64](repeating: 1, count: sequence), shape: [1, sequence])]
    }

    func load(_ file: String) throws -> Model {
        try ModelImporter.load(contentsOf: Self.corpus.appendingPathComponent(file))
    }

    /// llama-gqa: 8 query heads read 2 kv heads (4 each), head size 8, hidden 64.
    @Test(arguments: ["llama-gqa.onnx", "llama-gqa.dynamo.onnx"])
    func kvGroupsAreTheDefaultUnits(file: String) throws {
        let model = try load(file)
        let heads = PruningGroups.analyze(model).groups(of: [.heads])
        #expect(heads.map(\.unitCount) == [2, 2])
        #expect(heads.allSatisfy { $0.unitsAreKVGroups && $0.queryHeads == 8 })
        // A kv group: 4 query heads (q rows and o columns, 64 × 8 each) and a kv head (k and v rows).
        #expect(heads.allSatisfy { $0.paramsPerUnit == [2 * 64 * 8 * 4 + 2 * 64 * 8, 2 * 64 * 8 * 4 + 2 * 64 * 8] })

        let masked = try load(file), folded = try load(file)
        for (g, keep) in zip(PruningGroups.analyze(masked).groups(of: [.heads]), [[Float(0), 1], [1, 0]]) {
            try Masks.set(keep, for: g, in: masked)
            try Masks.set(keep, for: PruningGroups.analyze(folded).groups(of: [.heads]).first { $0.name == g.name }!, in: folded)
        }
        let summary = try MaskFolding.fold(folded)
        #expect(summary.unitsRemoved == [.heads: 2])
        // Each layer loses 4 query heads and 1 kv head: q, o 64 × 32 each; k, v 64 × 8 each.
        #expect(PruneCheck.floatParams(model) - PruneCheck.floatParams(folded) == 2 * (2 * 64 * 32 + 2 * 64 * 8))
        for length in [16, 7] {
            let diff = try PruneCheck.compare(masked, folded, Self.inputs(sequence: length, seed: UInt64(length)))
            #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "length \(length): \(diff)")
        }
    }

    @Test(arguments: ["llama-gqa.onnx", "llama-gqa.dynamo.onnx", "qwen2.onnx"])
    func queryHeadsAreUnitsWhenAskedFor(file: String) throws {
        let model = try load(file)
        let groups = PruningGroups.analyze(model, for: [.queryHeads])
        let q = groups.groups(of: [.queryHeads])
        let heads = file.hasPrefix("qwen2") ? 4 : 8
        #expect(q.count == 2 && q.allSatisfy { $0.unitCount == heads && $0.queryHeads == heads })
        // kv heads stay: their own groups are blocked with a reason that says so.
        #expect(groups.blocked.contains { $0.blockedReason?.contains("repeats kv heads") == true })

        let masked = try load(file), folded = try load(file)
        // Uneven removals: 3 query heads of layer 0, 1 of layer 1.
        let removals = [[0, 2, 5 % heads], [heads - 1]]
        for (i, r) in removals.enumerated() {
            let keep = PruneCheck.keep(heads, removing: r)
            try Masks.set(keep, for: PruningGroups.analyze(masked, for: [.queryHeads]).groups(of: [.queryHeads])[i], in: masked)
            try Masks.set(keep, for: PruningGroups.analyze(folded, for: [.queryHeads]).groups(of: [.queryHeads])[i], in: folded)
        }
        // Folding analyses with kv groups first, sees masks that differ inside a kv group, and
        // switches to query heads by itself.
        let summary = try MaskFolding.fold(folded)
        #expect(summary.unitsRemoved == [.queryHeads: Set(removals[0]).count + removals[1].count])
        // Keys and values are gathered for the kept query heads, once per layer each.
        #expect(folded.graph.nodes.filter { $0.opType.name == "Gather" && $0.name.hasPrefix("prunec.gather") }.count == 4)
        for length in [16, 9] {
            let diff = try PruneCheck.compare(masked, folded, Self.inputs(sequence: length, seed: UInt64(length + 1)))
            #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "length \(length): \(diff)")
        }
    }

    /// gemma: multi-query attention, 4 query heads over 1 kv head: query heads are the units.
    @Test func multiQueryAttentionHasQueryHeadUnits() throws {
        let model = try load("gemma.onnx")
        let heads = PruningGroups.analyze(model).groups(of: [.heads])
        #expect(heads.map(\.unitCount) == [4, 4])
        #expect(heads.allSatisfy { !$0.unitsAreKVGroups })
    }
}
