import Foundation
import PruneIR
import PruneRuntime
import Testing

@testable import PruneKit

/// `SampleInputs.make`: deterministic, shaped as asked, token ids valid for their embedding table.
@Suite struct SampleInputsTests {
    /// `ids` (int64 [1, 64]) → Cast(int32) → Gather(table [7, 4]); `mask` (int64 [1, 64]) feeds an Add;
    /// `x` is float [batch, 3]; `small` (int8 [32]) indexes a table of 1000 rows.
    static func model() -> Model {
        let b = GraphBuilder(name: "embed")
        let ids = b.input("ids", .int64, [1, 64])
        let mask = b.input("mask", .int64, [1, 64])
        let x = b.input("x", .float, [.symbol("batch"), .known(3)])
        let small = b.input("small", .int8, [32])
        let table = b.initializer("table", Tensor(floats: Array(repeating: 0, count: 28), shape: [7, 4]))
        let big = b.initializer("big", Tensor(floats: Array(repeating: 0, count: 2000), shape: [1000, 2]))
        let cast = b.add(.cast, [ids], attributes: [("to", .int(Int64(DType.int32.rawValue)))])
        b.output(b.add(.gather, [table, cast]), b.add(.add, [mask, mask]), b.add(.relu, [x]), b.add(.gather, [big, small]))
        return b.model()
    }

    @Test func theSameSeedGivesTheSameBytesAndAnotherSeedDoesNot() throws {
        let m = Self.model()
        let a = try SampleInputs.make(for: m)
        let b = try SampleInputs.make(for: m)
        let c = try SampleInputs.make(for: m, seed: 7)
        #expect(Set(a.keys) == ["ids", "mask", "x", "small"])
        for name in a.keys {
            #expect(a[name]!.doubles() == b[name]!.doubles(), "\(name)")
        }
        #expect(a["x"]!.doubles() != c["x"]!.doubles())
    }

    @Test func shapesComeFromTheModelOrTheOverride() throws {
        let m = Self.model()
        #expect(try SampleInputs.make(for: m)["x"]!.shape == [1, 3])  // symbol → 1
        #expect(try SampleInputs.make(for: m, shapes: ["x": [5, 3]])["x"]!.shape == [5, 3])
        #expect(throws: SampleInputsError.rankMismatch(input: "x", given: [5], declared: Shape([.symbol("batch"), .known(3)]))) {
            try SampleInputs.make(for: m, shapes: ["x": [5]])
        }
    }

    @Test func tokenIdsStayBelowTheEmbeddingTableSize() throws {
        let feeds = try SampleInputs.make(for: Self.model())
        let ids = feeds["ids"]!.ints()
        #expect(ids.allSatisfy { (0..<7).contains($0) })
        #expect(Set(ids).count > 3)
        // Not an index: the old range [0, 100).
        let mask = feeds["mask"]!.ints()
        #expect(mask.allSatisfy { (0..<100).contains($0) } && mask.contains { $0 >= 7 })
        // An int8 input cannot hold ids up to 1000: it stays within int8.
        #expect(feeds["small"]!.ints().allSatisfy { (0..<128).contains($0) })
    }

    @Test func exampleModelsGetValidIds() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let dit = try ModelImporter.load(contentsOf: root.appendingPathComponent("examples/models/dit.onnx"))
        // DiT's class embedding has 11 rows (10 labels + the null class).
        let labels = try SampleInputs.make(for: dit)["class_labels"]!.ints()
        #expect(labels.allSatisfy { (0..<11).contains($0) }, "\(labels)")
        let bert = try ModelImporter.load(contentsOf: root.appendingPathComponent("examples/models/bert.onnx"))
        let ids = try SampleInputs.make(for: bert, shapes: ["input_ids": [1, 256], "attention_mask": [1, 256]])["input_ids"]!.ints()
        #expect(ids.allSatisfy { (0..<1000).contains($0) } && ids.contains { $0 >= 100 })
    }

    @Test func untypedInputsAreRefused() throws {
        let b = GraphBuilder()
        let v = Value(name: "u")
        b.graph.addInput(v)
        b.output(b.add(.identity, [v]))
        #expect(throws: SampleInputsError.untypedInput("u")) { try SampleInputs.make(for: b.model()) }
    }
}
