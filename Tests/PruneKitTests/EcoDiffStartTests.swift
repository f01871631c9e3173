@testable import EcoDiffPasses
import FluctuationPasses
import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import Testing

/// ecodiff's starting point: gates that leave a closed unit's mean (``MeanCompensation``) and
/// log α from fluctuation's score (``GatePrior``), checked against the activations by hand.
@Suite struct EcoDiffStartTests {
    /// fc1's hidden activations (fc2's input) over every row of every set.
    static func hidden(_ model: Model, _ sets: [[String: NDArray]]) throws -> [[Double]] {
        let h = try #require(model.graph.node(named: "fc2/MatMul")?.inputs[0]?.name)
        let acts = try ActivationProbe(model: model, values: [h]).run(sets, threads: 1)
        var rows: [[Double]] = []
        for a in acts {
            let v = a[h]!.doubles()
            for r in 0 ..< v.count / 32 { rows.append(Array(v[r * 32 ..< (r + 1) * 32])) }
        }
        return rows
    }

    /// With fc1's gates closed, the compensated training model computes what the original does
    /// with fc1's activations replaced by their calibration means; with them open, the original.
    @Test func closedGatesLeaveTheCalibrationMean() throws {
        let model = ReconstructTests.mlp()
        let sets = ReconstructTests.data(6, seed: 3), probe = ReconstructTests.data(2, seed: 4)
        let rows = try Self.hidden(model, sets)
        let means = (0 ..< 32).map { j in rows.reduce(0) { $0 + $1[j] } / Double(rows.count) }

        let original = model.copy()
        let gates = try TrainableGates(model: model, kinds: [.neurons])
        let n = try MeanCompensation.apply(to: gates, probing: model, sets: sets, threads: 1)
        #expect(n == gates.masks.count && n == 2)
        let fc1 = try #require(gates.groups.firstIndex { $0.unitCount == 32 })
        let run = try Interpreter(model: gates.trainingModel)
        var closed = gates.groups.map { [Double](repeating: 1, count: $0.unitCount) }
        closed[fc1] = [Double](repeating: 0, count: 32)

        // The original, and a copy whose fc2 reads the means instead of fc1's activations.
        let reference = try Interpreter(model: original)
        let pinnedModel = original.copy()
        let h = try #require(pinnedModel.graph.node(named: "fc2/MatMul")?.inputs[0])
        let mu = pinnedModel.graph.addInitializer(Tensor(floats: (0 ..< 16).flatMap { _ in means.map(Float.init) }, shape: [16, 32]), name: "mu")
        h.replaceAllUses(with: mu)
        let pinnedRun = try Interpreter(model: pinnedModel)
        for input in probe {
            let open = try run.run(input.merging(gates.ones) { a, _ in a })
            let plain = try reference.run(input)
            let out = try #require(original.graph.outputs.first?.name)
            let a = GateMath.values(try #require(open[out])), b = GateMath.values(try #require(plain[out]))
            #expect(GateMath.relativeL2(a, b) < 1e-6)

            let shut = try run.run(input.merging(gates.feeds(closed)) { a, _ in a })
            let pinned = try pinnedRun.run(input)
            let c = GateMath.values(try #require(shut[out])), d = GateMath.values(try #require(pinned[out]))
            #expect(GateMath.relativeL2(c, d) < 1e-5, "closed gates vs means pinned: \(GateMath.relativeL2(c, d))")
        }
    }

    /// The units with log α < 0 are the lowest fluctuation scores per parameter up to the sparsity,
    /// log α rises with the score and stays within ±3.
    @Test func priorClosesWhatTheScoreWouldCut() throws {
        let model = ReconstructTests.mlp()
        let sets = ReconstructTests.data(6, seed: 5)
        let gates = try TrainableGates(model: model, kinds: [.neurons])
        var probed = 0
        let scores = try FluctuationPass.unitScores(gates.groups, in: model, sets: sets, metric: .fluctuation, context: PassContext(), probed: &probed)
        let (values, why) = GatePrior.logAlpha(gates: gates, model: model, sets: sets, sparsity: 0.3, spread: 2, limit: 3, context: PassContext())
        let prior = try #require(values, "\(why)")
        #expect(probed == 2)

        var units: [(g: Int, u: Int, key: Double, params: Double)] = []
        for (g, group) in gates.groups.enumerated() {
            for u in 0 ..< group.unitCount {
                units.append((g, u, scores[g][u] / Double(group.paramsPerUnit[u]), Double(group.paramsPerUnit[u])))
            }
        }
        let total = units.reduce(0) { $0 + $1.params }
        var expected = Set<[Int]>(), removed = 0.0
        for e in units.sorted(by: { $0.key < $1.key }) where removed < 0.3 * total {
            expected.insert([e.g, e.u])
            removed += e.params
        }
        // The unit at the cut starts at exactly 0 (undecided); the rest are strictly on their side.
        let closed = Set(units.filter { prior[$0.g][$0.u] <= 0 }.map { [$0.g, $0.u] })
        #expect(closed == expected)
        #expect(prior.joined().allSatisfy { abs($0) <= 3 })
        let ordered = units.sorted { $0.key < $1.key }.map { prior[$0.g][$0.u] }
        #expect(zip(ordered, ordered.dropFirst()).allSatisfy { $0 <= $1 })
    }

    static func pass(_ options: String) throws -> EcoDiffPass {
        var r = PassRegistry()
        r.register(EcoDiffPass.self)
        let text = "ecodiff{\(options)}"
        return try #require(try r.instantiate(try Pipeline.parse(text), text: text).first as? EcoDiffPass)
    }

    /// The closed gates of a model (group unit count → closed units).
    static func closed(_ model: Model) throws -> [Int: Set<Int>] {
        var out: [Int: Set<Int>] = [:]
        for g in PruningGroups.analyze(model).groups {
            let m = try #require(g.maskValues)
            out[g.unitCount] = Set(m.indices.filter { m[$0] == 0 })
        }
        return out
    }

    /// Without training the pass removes what its start closes (fluctuation's cut per parameter);
    /// after training, the centred budget still removes the asked share (within one unit), and the
    /// units training moved fit the training samples better with hard gates.
    @Test func untrainedMasksAreTheScoreCutAndTrainingKeepsTheBudget() throws {
        let sets = ReconstructTests.data(12, seed: 6)
        let model = ReconstructTests.mlp()
        let r0 = try Self.pass("objective=output,kinds=neurons,sparsity=0.3,steps=0,holdout=2").run(on: model, context: PassContext(calibration: sets))
        let untrained = try Self.closed(model)

        let scored = ReconstructTests.mlp()
        let gates = try TrainableGates(model: scored, kinds: [.neurons])
        var probed = 0
        let scores = try FluctuationPass.unitScores(gates.groups, in: scored, sets: sets, metric: .fluctuation,
                                                    context: PassContext(), probed: &probed)
        var units: [(n: Int, u: Int, key: Double, params: Double)] = []
        for (g, group) in gates.groups.enumerated() {
            for u in 0 ..< group.unitCount {
                units.append((group.unitCount, u, scores[g][u] / Double(group.paramsPerUnit[u]), Double(group.paramsPerUnit[u])))
            }
        }
        let total = units.reduce(0) { $0 + $1.params }
        var expected: [Int: Set<Int>] = [32: [], 12: []], removed = 0.0
        for e in units.sorted(by: { $0.key < $1.key }) where removed < 0.3 * total {
            expected[e.n, default: []].insert(e.u)
            removed += e.params
        }
        #expect(untrained == expected)
        #expect(abs((r0.statistics["prunable-fraction-removed"] ?? 0) - removed / total) < 1e-9)

        let trainedModel = ReconstructTests.mlp()
        let r = try Self.pass("objective=output,kinds=neurons,sparsity=0.3,steps=30,holdout=2").run(on: trainedModel, context: PassContext(calibration: sets))
        let fraction = r.statistics["prunable-fraction-removed"] ?? 0
        let largest = units.map(\.params).max() ?? 0
        #expect(fraction >= 0.3 && fraction < 0.3 + largest / total, "removed \(fraction)")
        let trained = try Self.closed(trainedModel)
        let moved = trained.keys.reduce(0) { $0 + trained[$1]!.symmetricDifference(untrained[$1] ?? []).count }
        print("ecodiff mlp: \(moved) units moved by 30 steps; fit learned \(r.statistics["fit-learned"] ?? .nan), start \(r.statistics["fit-start"] ?? .nan)")
        // On this model the learned masks fit the training samples better than the start.
        #expect((r.statistics["fit-learned"] ?? .infinity) < (r.statistics["fit-start"] ?? 0))
        #expect(moved > 0)
    }
}
