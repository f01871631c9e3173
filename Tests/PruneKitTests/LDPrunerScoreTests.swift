import Foundation
import LDPrunerPasses
import PruneIR
import PruneKit
import PruneRuntime
import Testing

/// LD-Pruner's scores against a direct computation: mask one unit (or block) as an initializer in
/// the model itself, run it on every evaluation input, and apply
/// `Σ_outputs ‖mean Z − mean Z′‖₂ + ‖std Z − std Z′‖₂` by hand (two-pass mean and std).
@Suite struct LDPrunerScoreTests {
    /// `x → fc1 (8→16) → Relu → fc2 (16→8) → + x → {fc3 (8→6), fc4 (8→3)}`: a 16-neuron group inside
    /// one residual block, and two outputs.
    static func residualMLP() -> Model {
        var rng = SeededRandom(41)
        let b = GraphBuilder()
        let x = b.input("x", .float, [2, 4, 8])
        let h = b.add(.relu, [b.linear(x, "fc1", 8, 16, &rng)])
        let r = b.add(.add, [x, b.linear(h, "fc2", 16, 8, &rng)], name: "residual")
        b.output(b.linear(r, "fc3", 8, 6, &rng))
        b.output(b.linear(r, "fc4", 8, 3, &rng))
        return b.model(opset: 17)
    }

    /// A toy denoiser: `out = fc2(relu(fc1(sample))) + sample · timestep / 1000`.
    static func toyDenoiser() -> Model {
        var rng = SeededRandom(43)
        let b = GraphBuilder()
        let x = b.input("sample", .float, [1, 2, 4])
        let t = b.input("timestep", .float, [1])
        let h = b.add(.relu, [b.linear(x, "fc1", 4, 12, &rng)])
        let y = b.linear(h, "fc2", 12, 4, &rng)
        let scaled = b.add(.mul, [x, b.add(.mul, [t, b.constant(float: 0.001)])])
        b.output(b.add(.add, [y, scaled], name: "out"))
        return b.model(opset: 17)
    }

    func pass(_ options: String) throws -> LDPrunerPass {
        var r = PassRegistry()
        r.register(LDPrunerPass.self)
        let text = "ld-pruner{\(options)}"
        return try #require(try r.instantiate(try Pipeline.parse(text), text: text).first as? LDPrunerPass)
    }

    static func calibration(_ name: String, _ shape: [Int], count: Int, seed: UInt64) -> [[String: NDArray]] {
        var rng = SeededRandom(seed)
        return (0..<count).map { _ in [name: NDArray.random(shape, &rng)] }
    }

    /// The formula, by hand, from the outputs of each evaluation (`ref[e][output]`, `masked[e][output]`).
    static func directScore(_ ref: [[String: NDArray]], _ masked: [[String: NDArray]], outputs: [String]) -> Double {
        var score = 0.0
        for o in outputs {
            let z = ref.map { GateMath.values($0[o]!) }, zp = masked.map { GateMath.values($0[o]!) }
            let n = Double(z.count)
            func stats(_ a: [[Double]]) -> ([Double], [Double]) {
                let mean = (0..<a[0].count).map { i in a.reduce(0) { $0 + $1[i] } / n }
                let std = (0..<a[0].count).map { i in (a.reduce(0) { $0 + ($1[i] - mean[i]) * ($1[i] - mean[i]) } / n).squareRoot() }
                return (mean, std)
            }
            let (m, s) = stats(z), (mp, sp) = stats(zp)
            score += zip(m, mp).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            score += zip(s, sp).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        }
        return score
    }

    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-6 * max(abs(a), abs(b)) + 1e-9 }

    @Test func unitAndBlockScoresMatchADirectComputation() throws {
        let model = Self.residualMLP()
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 4, seed: 5))
        let s = try pass("kinds=neurons+blocks,holdout=0").score(model, context: context)
        let gates = s.gates
        #expect(gates.groups.count == 1 && gates.groups.first?.unitCount == 16 && gates.blocks.count == 1)
        #expect(s.evaluation.scoring.count == 4 && s.evaluation.outputs.count == 2 && s.evaluation.denoiser == nil)
        #expect(s.scores.maskedRuns == 17 * 4)
        #expect(s.scores.stepsRecomputed < s.scores.stepsFull)

        // The gated model computes the original; a mask initializer removes one unit.
        let group = try #require(gates.groups.first)
        func runAll() throws -> [[String: NDArray]] {
            let interp = try Interpreter(model: model, options: .init(threads: 1, profile: false))
            return try s.evaluation.scoring.map { try interp.run($0) }
        }
        let ref = try runAll()
        for u in 0..<group.unitCount {
            try Masks.set((0..<16).map { $0 == u ? 0 : 1 }, for: group, in: model)
            let direct = Self.directScore(ref, try runAll(), outputs: s.evaluation.outputs)
            #expect(close(s.scores.units[0][u], direct), "unit \(u): pass \(s.scores.units[0][u]), direct \(direct)")
            #expect(direct > 0 || s.scores.units[0][u] == 0)
        }
        try Masks.set([Float](repeating: 1, count: 16), for: group, in: model)
        let block = try #require(gates.blocks.first)
        try Masks.set(0, for: block, in: model)
        let direct = Self.directScore(ref, try runAll(), outputs: s.evaluation.outputs)
        #expect(close(s.scores.blocks[0], direct), "block: pass \(s.scores.blocks[0]), direct \(direct)")
        #expect(direct > 0)
    }

    @Test func denoiserScoresAtNoisedLatentsMatchADirectComputation() throws {
        let model = Self.toyDenoiser()
        var calibration = Self.calibration("sample", [1, 2, 4], count: 3, seed: 9)
        for k in calibration.indices { calibration[k]["timestep"] = NDArray([Float(7)], shape: [1]) }
        let s = try pass("kinds=neurons,holdout=1,timesteps=2").score(model, context: PassContext(calibration: calibration))
        // 2 scoring samples × 2 timesteps, held out: the last sample × 2 timesteps.
        #expect(s.evaluation.denoiser?.sample == "sample" && s.evaluation.timesteps == [250, 750])
        #expect(s.evaluation.scoring.count == 4 && s.evaluation.heldOut.count == 2)
        // The latent is the sample's, noised by the forward process (so it differs, but stays correlated).
        let ab = NoiseSchedule().alphasCumprod[250]
        let x0 = GateMath.values(calibration[0]["sample"]!), xt = GateMath.values(s.evaluation.scoring[0]["sample"]!)
        let eps = zip(xt, x0).map { ($0 - ab.squareRoot() * $1) / (1 - ab).squareRoot() }
        #expect(xt != x0 && eps.allSatisfy { abs($0) < 6 })
        #expect(GateMath.values(s.evaluation.scoring[1]["timestep"]!) == [750])

        let group = try #require(s.gates.groups.first)
        let interp = { try Interpreter(model: model, options: .init(threads: 1, profile: false)) }
        let ref = try s.evaluation.scoring.map { try interp().run($0) }
        for u in 0..<group.unitCount {
            try Masks.set((0..<group.unitCount).map { $0 == u ? 0 : 1 }, for: group, in: model)
            let m = try interp()
            let direct = Self.directScore(ref, try s.evaluation.scoring.map { try m.run($0) }, outputs: s.evaluation.outputs)
            #expect(close(s.scores.units[0][u], direct), "unit \(u): pass \(s.scores.units[0][u]), direct \(direct)")
        }
    }

    @Test func reuseGivesTheScoresOfFullRuns() throws {
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 5, seed: 6))
        let a = try pass("kinds=neurons+blocks,reuse=true").score(Self.residualMLP(), context: context)
        let b = try pass("kinds=neurons+blocks,reuse=false").score(Self.residualMLP(), context: context)
        #expect(a.scores.units == b.scores.units && a.scores.blocks == b.scores.blocks)
        #expect(a.scores.maskedRuns == b.scores.maskedRuns)
        #expect(a.scores.stepsRecomputed < b.scores.stepsRecomputed && b.scores.stepsRecomputed == b.scores.stepsFull)
    }

    /// Units scored in chunks (a small accumulator budget) get the scores of one chunk.
    @Test func chunkedScoringGivesTheSameScores() throws {
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 4, seed: 8))
        let s = try pass("kinds=neurons+blocks").score(Self.residualMLP(), context: context)
        var scorer = LatentShiftScorer(interpreter: s.interpreter, gates: s.gates, inputs: s.evaluation.scoring,
                                       outputs: s.evaluation.outputs, reuse: true)
        scorer.accumulatorBudget = 16 * (2 * 4 * 6 + 2 * 4 * 3) * 5  // 5 units per chunk
        let chunked = try scorer.score()
        #expect(chunked.units == s.scores.units && chunked.blocks == s.scores.blocks)
        // 17 probes in 4 chunks, each re-recording the 3 scoring inputs (the 4th set is held out).
        #expect(s.evaluation.scoring.count == 3 && chunked.referenceRuns == 1 + 4 * 3 && s.scores.referenceRuns == 1 + 3)
    }

    /// The pass removes the lowest-scoring units and reports what it did.
    @Test func removesTheLowestScoringUnits() throws {
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 5, seed: 7))
        let scores = try pass("sparsity=0.25,holdout=1").score(Self.residualMLP(), context: context).scores.units[0]
        let model = Self.residualMLP()
        let result = try pass("sparsity=0.25,holdout=1").run(on: model, context: context)
        let group = try #require(PruningGroups.analyze(model).groups.first)
        let removed = Set((group.maskValues ?? []).enumerated().filter { $0.element == 0 }.map(\.offset))
        let lowest = Set(scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }.prefix(4))
        #expect(removed == lowest)
        let stats = result.statistics
        #expect(stats["neurons-removed"] == 4 && stats["units-scored"] == 16 && stats["evaluations"] == 16 * 4)
        let ld = try #require(stats["holdout-drift"])
        #expect(ld.isFinite && ld > 0)
    }

    /// A target of zero removes nothing, so nothing is scored and the model is untouched.
    @Test func aZeroTargetChangesNothing() throws {
        let model = Self.residualMLP()
        let before = try ModelExporter.proto(model).serializedBytes() as [UInt8]
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 3, seed: 7))
        let result = try pass("sparsity=0").run(on: model, context: context)
        #expect(!result.changed && result.statistics.isEmpty)
        #expect(try ModelExporter.proto(model).serializedBytes() as [UInt8] == before)
    }
}
