import Foundation
import LDPrunerPasses
import PruneIR
import PruneKit
import PruneRuntime
import PruneTestSupport
import Testing

/// LD-Pruner's scores against a direct computation: mask one unit (or block) as an initializer in
/// the model itself, run it on every evaluation input, and apply
/// `Σ_outputs ‖mean Z − mean Z′‖₂ + ‖std Z − std Z′‖₂` by hand (two-pass mean and std).
@Suite struct LDPrunerScoreTests {
    /// `x → fc1 (8→16) → Relu → fc2 (16→8) → + x → {fc3 (8→6), fc4 (8→3)}`: a 16-neuron group inside
    /// one residual block, and two outputs.
    static func residualMLP(batch: Dim = .known(2)) -> Model {
        var rng = SeededRandom(41)
        let b = GraphBuilder()
        let x = b.input("x", .float, [batch, .known(4), .known(8)])
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
        let s = try pass("kinds=neurons+blocks,holdout=0,estimate=exact").score(model, context: context)
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
        let s = try pass("kinds=neurons,holdout=1,timesteps=2,estimate=exact").score(model, context: PassContext(calibration: calibration))
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
        let a = try pass("kinds=neurons+blocks,reuse=true,estimate=exact").score(Self.residualMLP(), context: context)
        let b = try pass("kinds=neurons+blocks,reuse=false,estimate=exact").score(Self.residualMLP(), context: context)
        #expect(a.scores.units == b.scores.units && a.scores.blocks == b.scores.blocks)
        #expect(a.scores.maskedRuns == b.scores.maskedRuns)
        #expect(a.scores.stepsRecomputed < b.scores.stepsRecomputed && b.scores.stepsRecomputed == b.scores.stepsFull)
    }

    /// Units scored in chunks (a small accumulator budget) get the scores of one chunk.
    @Test func chunkedScoringGivesTheSameScores() throws {
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 4, seed: 8))
        let s = try pass("kinds=neurons+blocks,estimate=exact").score(Self.residualMLP(), context: context)
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
        let scores = try pass("sparsity=0.25,holdout=1,estimate=exact").score(Self.residualMLP(), context: context).scores.units[0]
        let model = Self.residualMLP()
        let result = try pass("sparsity=0.25,holdout=1,estimate=exact").run(on: model, context: context)
        let group = try #require(PruningGroups.analyze(model).groups.first)
        let removed = Set((group.maskValues ?? []).enumerated().filter { $0.element == 0 }.map(\.offset))
        let lowest = Set(scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }.prefix(4))
        #expect(removed == lowest)
        let stats = result.statistics
        #expect(stats["neurons-removed"] == 4 && stats["units-scored"] == 16 && stats["evaluations"] == 16 * 4)
        let ld = try #require(stats["holdout-drift"])
        #expect(ld.isFinite && ld > 0)
    }

    /// Spearman's rank correlation (ties get their mean rank), computed here apart from the pass's.
    static func spearman(_ a: [Double], _ b: [Double]) -> Double {
        func ranks(_ x: [Double]) -> [Double] {
            var r = [Double](repeating: 0, count: x.count)
            for i in x.indices {
                let below = x.filter { $0 < x[i] }.count, equal = x.filter { $0 == x[i] }.count
                r[i] = Double(below) + Double(equal - 1) / 2
            }
            return r
        }
        let ra = ranks(a), rb = ranks(b), n = Double(a.count)
        let ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
        let cov = zip(ra, rb).reduce(0) { $0 + ($1.0 - ma) * ($1.1 - mb) }
        let va = ra.reduce(0) { $0 + ($1 - ma) * ($1 - ma) }, vb = rb.reduce(0) { $0 + ($1 - mb) * ($1 - mb) }
        return cov / (va * vb).squareRoot()
    }

    /// The first-order sketch ranks the units as their exact scores do: on the residual MLP (two
    /// outputs, 16 neurons) and on the example BERT (heads and neurons, 264 units).
    @Test func firstOrderEstimatesRankLikeTheExactScores() throws {
        let mlpContext = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 6, seed: 12))
        let exactMLP = try pass("kinds=neurons,holdout=1,estimate=exact").score(Self.residualMLP(), context: mlpContext).scores.units
        let sketch = try pass("kinds=neurons,holdout=1,estimate=first-order,projections=64").score(Self.residualMLP(), context: mlpContext)
        let estimates = try #require(sketch.estimates)
        #expect(sketch.scores.units == estimates.units && sketch.scores.maskedRuns == 0)
        // The input's batch is fixed at 2: the 5 inputs cannot be stacked, one backward pass each
        // (× outputs × terms × projections).
        #expect(estimates.backwardRuns == 5 * 2 * 2 * 64)
        // With a free batch they run stacked, one backward pass for all, to the same estimates.
        let stacked = try pass("kinds=neurons,holdout=1,estimate=first-order,projections=64").score(Self.residualMLP(batch: .symbol("batch")), context: mlpContext)
        #expect(stacked.estimates?.backwardRuns == 2 * 2 * 64)
        for (a, b) in zip(stacked.scores.units[0], sketch.scores.units[0]) { #expect(abs(a - b) <= 1e-5 * max(a, 1e-9), "\(a) vs \(b)") }
        let mlp = Self.spearman(estimates.units.flatMap { $0 }, exactMLP.flatMap { $0 })
        #expect(mlp > 0.9, "residual MLP: rank correlation \(mlp)")

        let url = TestPaths.examples.appendingPathComponent("bert.onnx")
        let calibration = try CalibrationData.load(TestPaths.examples.appendingPathComponent("bert.calib.npz"),
                                                   for: try ModelImporter.load(contentsOf: url), note: { _ in })
        let context = PassContext(calibration: calibration)
        let exact = try pass("samples=4,holdout=1,kinds=heads+neurons,estimate=exact").score(try ModelImporter.load(contentsOf: url), context: context)
        let first = try pass("samples=4,holdout=1,kinds=heads+neurons,estimate=first-order").score(try ModelImporter.load(contentsOf: url), context: context)
        let bert = Self.spearman(first.scores.units.flatMap { $0 }, exact.scores.units.flatMap { $0 })
        #expect(exact.scores.units.joined().count == 264)
        #expect(bert > 0.9, "bert: rank correlation \(bert)")
    }

    /// `x (batch free) → fc1 (8→16) → Relu → fc2 → + x`, where fc2's rows make neurons 0–7 a hundred times
    /// weaker than neurons 8–15 (and each a little stronger than the one before).
    static func twoTierMLP() -> Model {
        var rng = SeededRandom(47)
        let b = GraphBuilder()
        let x = b.input("x", .float, [.symbol("batch"), .known(4), .known(8)])
        let h = b.add(.relu, [b.linear(x, "fc1", 8, 16, &rng)])
        var w: [Float] = []
        for j in 0..<16 {
            let scale = Float(j < 8 ? 0.01 : 1) * (1 + Float(j % 8) / 8)
            w += (0..<8).map { _ in rng.float(scale: scale) }
        }
        let y = b.add(.matMul, [h, b.initializer("fc2.weight", Tensor(floats: w, shape: [16, 8]))], name: "fc2/MatMul")
        b.output(b.add(.add, [x, y], name: "residual"))
        return b.model(opset: 17)
    }

    /// With a clear cut, the shortlist reruns the units on either side of it and removes what
    /// exact scoring removes; a shortlist of every unit is exact scoring.
    @Test func shortlistRemovesWhatExactScoringRemoves() throws {
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 5, seed: 13))
        func removed(_ options: String) throws -> (Set<Int>, [String: Double]) {
            let model = Self.twoTierMLP()
            let result = try pass("kinds=neurons,sparsity=0.5,holdout=1,\(options)").run(on: model, context: context)
            let group = try #require(PruningGroups.analyze(model).groups.first)
            return (Set((group.maskValues ?? []).enumerated().filter { $0.element == 0 }.map(\.offset)), result.statistics)
        }
        let (exact, exactStats) = try removed("estimate=exact")
        #expect(exact == Set(0..<8) && exactStats["evaluations"] == 16 * 4)
        let (short, stats) = try removed("estimate=shortlist,exact=0.25")
        #expect(short == exact)
        // The 4 samples run stacked: one rerun per unit.
        #expect(stats["units-rerun"] == 4 && stats["evaluations"] == 4, "\(stats)")
        let (unstacked, unstackedStats) = try removed("estimate=shortlist,exact=0.25,stack=false")
        #expect(unstacked == exact && unstackedStats["evaluations"] == 4 * 4)

        let s = try pass("kinds=neurons,sparsity=0.5,holdout=1,exact=0.25").score(Self.twoTierMLP(), context: context)
        let rerun = try #require(s.exactUnits?.first), estimates = try #require(s.estimates?.units.first)
        // The rerun units straddle the cut: the strongest of the weak tier and the weakest of the strong one.
        let weakest = (8..<16).min { estimates[$0] < estimates[$1] } ?? 8, strongest = (0..<8).max { estimates[$0] < estimates[$1] } ?? 7
        #expect(rerun.filter { $0 }.count == 4 && rerun[weakest] && rerun[strongest], "rerun \(rerun), estimates \(estimates)")
        #expect(s.scores.units[0].allSatisfy { $0.isFinite && $0 > 0 })

        // Every unit rerun: the scores and the choice of estimate=exact.
        let all = try pass("kinds=neurons,sparsity=0.5,holdout=1,exact=1,stack=false").score(Self.twoTierMLP(), context: context)
        let reference = try pass("kinds=neurons,sparsity=0.5,holdout=1,estimate=exact").score(Self.twoTierMLP(), context: context)
        #expect(all.scores.units == reference.scores.units && reference.estimates == nil && reference.exactUnits == nil)
        // Stacked, the same scores up to rounding (GEMMs over more rows).
        let stacked = try pass("kinds=neurons,sparsity=0.5,holdout=1,exact=1").score(Self.twoTierMLP(), context: context)
        for (a, b) in zip(stacked.scores.units[0], reference.scores.units[0]) { #expect(abs(a - b) <= 1e-5 * b, "\(a) vs \(b)") }
    }

    /// Units outside the shortlist keep their estimate, scaled by the median ratio of exact score to
    /// estimate over the rerun units, so the two compare.
    @Test func estimatesOutsideTheShortlistAreScaledToTheExactScores() throws {
        let context = PassContext(calibration: Self.calibration("x", [2, 4, 8], count: 5, seed: 14))
        let s = try pass("kinds=neurons,sparsity=0.25,holdout=1,exact=0.5").score(Self.residualMLP(), context: context)
        let e = try #require(s.estimates), rerun = try #require(s.exactUnits), scales = try #require(s.scales)
        let ratios = (0..<16).filter { rerun[0][$0] }.map { s.scores.units[0][$0] / e.units[0][$0] }.sorted()
        #expect(ratios.count == 8 && abs(scales[0] - (ratios[3] + ratios[4]) / 2) < 1e-12)
        for u in 0..<16 where !rerun[0][u] { #expect(s.scores.units[0][u] == scales[0] * e.units[0][u]) }
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
