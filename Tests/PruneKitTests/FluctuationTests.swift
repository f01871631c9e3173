import FluctuationPasses
import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import Testing

/// `fluctuation`: the scores against the formula computed by hand from the probed activations.
@Suite struct FluctuationTests {
    static func pass(_ options: String) throws -> FluctuationPass {
        var r = PassRegistry()
        r.register(FluctuationPass.self)
        let text = "fluctuation{\(options)}"
        return try #require(try r.instantiate(try Pipeline.parse(text), text: text).first as? FluctuationPass)
    }

    /// Per neuron j of fc1→Relu→fc2: Var(h_j) · ‖W2[j, :]‖² (or E[h_j²] · ‖W2[j, :]‖²) over every row
    /// of every set, by hand.
    static func byHand(_ model: Model, _ sets: [[String: NDArray]], energy: Bool) throws -> [Double] {
        let h = try #require(model.graph.node(named: "fc2/MatMul")?.inputs[0]?.name)
        let acts = try ActivationProbe(model: model, values: [h]).run(sets, threads: 1)
        let w = try #require(model.graph.value(named: "fc2.weight")?.initializer).floats()
        let (k, n) = (32, 12)
        var rows: [[Double]] = []
        for a in acts {
            let v = a[h]!.doubles()
            for r in 0 ..< v.count / k { rows.append(Array(v[r * k ..< (r + 1) * k])) }
        }
        return (0 ..< k).map { j in
            let xs = rows.map { $0[j] }
            let mean = xs.reduce(0, +) / Double(xs.count)
            let stat = energy ? xs.reduce(0) { $0 + $1 * $1 } / Double(xs.count)
                : xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count)
            return stat * (0 ..< n).reduce(0) { $0 + Double(w[j * n + $1] * w[j * n + $1]) }
        }
    }

    @Test(arguments: ["fluctuation", "energy"])
    func masksTheUnitsWithTheLowestScores(metric: String) throws {
        let model = ReconstructTests.mlp()
        let sets = ReconstructTests.data(5, seed: 8)
        let scores = try Self.byHand(model, sets, energy: metric == "energy")
        let expected = Set(scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }.prefix(8))
        let r = try Self.pass("sparsity=0.25,scope=layer,kinds=neurons,metric=\(metric),per-cost=false")
            .run(on: model, context: PassContext(calibration: sets))
        #expect(Int(r.statistics["neurons-removed"] ?? 0) == 11)  // 8 of fc1's 32, 3 of fc3's 12
        let group = try #require(PruningGroups.analyze(model).groups.first { $0.unitCount == 32 })
        let masks = try #require(group.maskValues)
        #expect(Set(masks.indices.filter { masks[$0] == 0 }) == expected)
    }

    @Test func needsCalibrationData() throws {
        #expect {
            _ = try Self.pass("sparsity=0.25").run(on: ReconstructTests.mlp(), context: PassContext())
        } throws: { "\($0)".contains("--calib") }
    }
}
