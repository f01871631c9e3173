import Foundation
import PruneIR
import PruneKit
import PruneTestSupport
import Testing

/// AutoBot's differentiable MACs: its gradient against finite differences, and with 0/1 gates the
/// exact MACs of the folded model.
struct GatedMACsTests {
    func model(_ name: String) throws -> Model {
        try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent("\(name).onnx"))
    }

    @Test(arguments: ["resnet", "bert", "unet"])
    func gradientMatchesFiniteDifferences(_ name: String) throws {
        let m = try model(name)
        let groups = PruningGroups.analyze(m).groups
        let shapes: [String: Shape] = name == "bert" ? ["input_ids": [1, 16], "attention_mask": [1, 16]] : [:]
        let cost = try GatedMACs(model: m, groups: groups, shapes: shapes)
        var rng = NoiseSource(seed: 5)
        let gates = groups.map { g in (0..<g.unitCount).map { _ in 0.2 + 0.8 * rng.uniform() } }
        let (f, grad) = cost.evaluate(gates)
        #expect(f > 0 && f < cost.total)
        for _ in 0..<12 {
            let g = Int(rng.next() % UInt64(groups.count)), u = Int(rng.next() % UInt64(groups[g].unitCount))
            var plus = gates, minus = gates
            plus[g][u] += 1e-4
            minus[g][u] -= 1e-4
            let fd = (cost.evaluate(plus).macs - cost.evaluate(minus).macs) / 2e-4
            #expect(abs(grad[g][u] - fd) <= 1e-6 * max(1, abs(fd)), "\(name) group \(g) unit \(u): \(grad[g][u]) vs \(fd)")
        }
    }

    /// Binary gates: the cost model's MACs equal the MACs of the model folded with those masks.
    @Test(arguments: ["resnet", "unet", "dit"])
    func binaryGatesGiveTheFoldedModelsMACs(_ name: String) throws {
        let m = try model(name)
        let groups = PruningGroups.analyze(m).groups
        let cost = try GatedMACs(model: m, groups: groups)
        var rng = NoiseSource(seed: 6)
        let keep = groups.map { g -> [Double] in
            var k = (0..<g.unitCount).map { _ in rng.uniform() < 0.6 ? 1.0 : 0.0 }
            k[0] = 1
            return k
        }
        for (g, k) in zip(groups, keep) { try Masks.set(k.map(Float.init), for: g, in: m) }
        try MaskFolding.fold(m)
        let folded = try #require(CostModel().totalMACs(m))
        #expect(abs(cost.evaluate(keep).macs - Double(folded)) < 0.5, "\(name): \(cost.evaluate(keep).macs) vs folded \(folded)")
    }
}
