import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import Testing

@testable import DepthPasses

/// `depth`'s units (`unit=layer`), its searches (`search=greedy` against one-shot) and its
/// parameter target, on small graphs built here.
@Suite struct DepthPassTests {
    static let registry: PassRegistry = {
        var r = PassRegistry()
        r.register(DepthPass.self)
        return r
    }()

    static func run(_ pipeline: String, on model: Model, calibration: [[String: NDArray]]) throws -> PassRecord {
        let pm = try PassManager(pipeline: try Pipeline.parse(pipeline), registry: registry)
        pm.verifyEach = true
        return try pm.run(on: model, context: PassContext(calibration: calibration))[0]
    }

    /// `s + attention(s)`: one head of self-attention over [1, 4, 8] (a `Softmax` in the branch).
    static func attention(_ b: GraphBuilder, _ s: Value, _ name: String, _ rng: inout SeededRandom) -> Value {
        let q = b.add(.matMul, [s, b.floats("\(name).wq", [8, 8], &rng, scale: 0.3)])
        let kt = b.add(.transpose, [s], attributes: [("perm", .ints([0, 2, 1]))])
        let p = b.add(.softmax, [b.add(.matMul, [q, kt])], attributes: [("axis", .int(-1))])
        let o = b.add(.matMul, [b.add(.matMul, [p, s]), b.floats("\(name).wo", [8, 8], &rng, scale: 0.3)])
        return b.add(.add, [s, o], name: name)
    }

    /// `s + W2·relu(W1·s)`.
    static func mlp(_ b: GraphBuilder, _ s: Value, _ name: String, _ rng: inout SeededRandom) -> Value {
        let h = b.add(.relu, [b.add(.matMul, [s, b.floats("\(name).w1", [8, 16], &rng, scale: 0.3)])])
        return b.add(.add, [s, b.add(.matMul, [h, b.floats("\(name).w2", [16, 8], &rng, scale: 0.3)])], name: name)
    }

    /// attention, MLP (a pre-norm layer); attention, attention (no pair); post-norm
    /// `LayerNormalization` then MLP (pairs with the attention before it); an `Add` of another
    /// input (a UNet's skip connection), then attention and an MLP after that sum.
    static func chain() -> Model {
        var rng = SeededRandom(31)
        let b = GraphBuilder(name: "chain")
        let x = b.input("x", .float, [1, 4, 8]), other = b.input("other", .float, [1, 4, 8])
        var s = mlp(b, attention(b, x, "attn0", &rng), "mlp0", &rng)
        s = attention(b, attention(b, s, "attn1", &rng), "attn2", &rng)
        let norm = b.add(.layerNormalization, [s, b.floats("ln.scale", [8], &rng, scale: 1), b.floats("ln.bias", [8], &rng, scale: 0.1)],
                         attributes: [("axis", .int(-1))])
        s = mlp(b, norm, "mlp2", &rng)
        let a3 = attention(b, s, "attn3", &rng)
        s = mlp(b, b.add(.add, [a3, other], name: "skip_connection"), "mlp3", &rng)
        b.output(s)
        let m = b.model(opset: 17)
        ShapeInference().run(on: m)
        return m
    }

    @Test func layerUnitsPairAttentionWithTheNextBlockOnTheResidualChain() throws {
        let m = Self.chain()
        let blocks = ResidualBlock.find(in: m)
        #expect(blocks.map(\.name) == ["attn0", "mlp0", "attn1", "attn2", "mlp2", "attn3", "mlp3"])
        let layers = DepthUnit.layers(blocks)
        #expect(layers.map(\.name) == ["attn0+mlp0", "attn1", "attn2+mlp2", "attn3", "mlp3"])
        #expect(layers[0].params == blocks[0].params + blocks[1].params && layers[0].params == 2 * 64 + 2 * 128)
        #expect(DepthUnit.subBlocks(blocks).map(\.blocks) == (0 ..< 7).map { [$0] })
        withExtendedLifetime(m) {}
    }

    @Test func aLayerUnitIsRemovedWholeAndProtectionCountsUnits() throws {
        var rng = SeededRandom(4)
        let calib = (0 ..< 3).map { _ in ["x": NDArray.random([1, 4, 8], &rng), "other": NDArray.random([1, 4, 8], &rng)] }
        let m = Self.chain()
        // Units: attn0+mlp0 | attn1 | attn2+mlp2 | attn3 | mlp3; protect 1 first and 3 last: only attn1.
        let r = try Self.run("depth{unit=layer,blocks=1,criterion=drift,holdout=0,protect-last=3}", on: m, calibration: calib)
        #expect(r.statistics["units-removed"] == 1 && r.statistics["blocks-removed"] == 1 && r.statistics["candidates"] == 1)
        let m2 = Self.chain()
        let r2 = try Self.run("depth{unit=layer,blocks=1,criterion=drift,holdout=0,protect-first=2,protect-last=2}", on: m2, calibration: calib)
        #expect(r2.statistics["units-removed"] == 1 && r2.statistics["blocks-removed"] == 2)
        #expect(r2.statistics["params-removed"] == Double(2 * 64 + 2 * 128))
        let removed = Set(m2.graph.nodes.filter { $0.opType == .identity }.map(\.name))
        #expect(removed == ["attn2", "mlp2"])
    }

    /// Blocks A and B each add 10 to a stream that a `Min` then clips at 5, so either alone is
    /// harmless and both together are not; C, after the clip, is a little harmful alone.
    static func redundantPair() -> Model {
        var rng = SeededRandom(12)
        let b = GraphBuilder(name: "redundant")
        let x = b.input("x", .float, [2, 8])
        func shifted(_ s: Value, _ name: String) -> Value {
            let branch = b.add(.add, [b.add(.matMul, [s, b.floats("\(name).w", [8, 8], &rng, scale: 0.01)]),
                                      b.initializer("\(name).b", Tensor(floats: [Float](repeating: 10, count: 8), shape: [8]))])
            return b.add(.add, [s, branch], name: name)
        }
        let clipped = b.add(OpType("Min"), [shifted(shifted(x, "A"), "B"), b.initializer("cap", Tensor(floats: [5], shape: [1]))])
        var eye = [Float](repeating: 0, count: 64)
        for i in 0 ..< 8 { eye[i * 9] = 0.05 }
        let c = b.add(.matMul, [clipped, b.initializer("C.w", Tensor(floats: eye, shape: [8, 8]))])
        b.output(b.add(.add, [clipped, c], name: "C"))
        let m = b.model(opset: 17)
        ShapeInference().run(on: m)
        return m
    }

    @Test func greedyAvoidsAPairThatIsHarmlessAloneAndHarmfulTogether() throws {
        var rng = SeededRandom(5)
        let calib = (0 ..< 3).map { _ in ["x": NDArray.random([2, 8], &rng)] }
        let options = "blocks=2,criterion=drift,holdout=0,protect-first=0,protect-last=0"
        var removed: [String: Set<String>] = [:], drift: [String: Double] = [:]
        for search in ["one-shot", "greedy"] {
            let m = Self.redundantPair()
            #expect(ResidualBlock.find(in: m).map(\.name) == ["A", "B", "C"])
            let r = try Self.run("depth{\(options),search=\(search)}", on: m, calibration: calib)
            removed[search] = Set(m.graph.nodes.filter { $0.opType == .identity }.map(\.name))
            drift[search] = r.statistics["drift-after"] ?? .nan
        }
        #expect(removed["one-shot"] == ["A", "B"], "\(removed)")
        #expect(removed["greedy"] == ["A", "C"], "\(removed)")
        // Both clipped away: the output is the input; C alone: 5% of it.
        #expect((drift["greedy"] ?? .nan) < 0.06 && (drift["one-shot"] ?? 0) > 0.5, "\(drift)")
    }

    /// Units with given parameters and harms (the measure adds the harms of the skipped units,
    /// plus `together` when units 0 and 1 are both skipped).
    static func search(_ params: [Int], _ harms: [Double], together: Double = 0, target: UnitSearch.Target) -> UnitSearch {
        let units = params.enumerated().map { DepthUnit(blocks: [$0.offset], params: $0.element, name: "u\($0.offset)") }
        return UnitSearch(units: units, candidates: Array(units.indices), blockCount: units.count, target: target, logScale: false,
                          perParameter: true, context: PassContext()) { skip in
            zip(skip, harms).reduce(0) { $0 + ($1.0 == 0 ? $1.1 : 0) } + (skip[0] == 0 && skip[1] == 0 ? together : 0)
        }
    }

    @Test func aParameterTargetRanksPerParameterAndLandsClosest() throws {
        // Cost per parameter: u3 0.00025, u1 0.0005, u0 0.001, u2 0.002. Toward 250: u3 (40), u1
        // (140), not u0 (440 is further from 250 than 140), u2 (240).
        let s = Self.search([300, 100, 100, 40], [0.3, 0.05, 0.2, 0.01], target: .params(250))
        let scores = try s.scoreAlone()
        let oneShot = s.oneShot(scores: scores, reference: 0, harms: true)
        #expect(oneShot == [3, 1, 2])
        #expect(try s.greedy(shortlist: 2) == [3, 1, 2])
        // A count target ranks by harm alone.
        let k = Self.search([300, 100, 100, 40], [0.3, 0.05, 0.2, 0.01], target: .units(2))
        #expect(k.oneShot(scores: try k.scoreAlone(), reference: 0, harms: true) == [3, 1])
        // Nothing brings 10 parameters closer to the target than none.
        #expect(Self.search([300, 100], [0.1, 0.1], target: .params(10)).oneShot(scores: [0: 0.1, 1: 0.1], reference: 0, harms: true).isEmpty)
    }

    @Test func greedyRescoresTheShortlistWithTheChosenUnitsSkipped() throws {
        // u0 and u1 are the cheapest alone, expensive together; u2 is next.
        let s = Self.search([10, 10, 10, 10], [0.01, 0.02, 0.05, 0.5], together: 1, target: .units(2))
        #expect(s.oneShot(scores: try s.scoreAlone(), reference: 0, harms: true) == [0, 1])
        #expect(try s.greedy(shortlist: 3) == [0, 2])
        // A shortlist of one re-scores only u1 (the best left after round 1), which still wins.
        #expect(try s.greedy(shortlist: 1) == [0, 1])
    }

    @Test(arguments: [
        (["search": "greedy", "criterion": "taylor"], "search"),
        (["search": "greedy", "criterion": "random"], "search"),
        (["search": "greedy", "preset": "bk-sdm"], "search"),
        (["unit": "layer", "preset": "bk-sdm-base"], "unit"),
        (["unit": "layers"], "unit"),
        (["search": "joint"], "search"),
        (["shortlist": "0"], "shortlist"),
    ])
    func badOptionCombinationsAreRejected(_ given: [String: String], _ key: String) throws {
        let error = #expect(throws: OptionError.self) {
            _ = try DepthPass.Options.parse(given.map { (key: $0.key, value: $0.value) })
        }
        #expect(error?.key == key, "\(given): \(String(describing: error))")
    }

    @Test func goodOptionsParseAndPrintBack() throws {
        let o = try DepthPass.Options.parse([("unit", "layer"), ("search", "greedy"), ("shortlist", "4"), ("params", "0.065")])
        #expect(o.unit == .layer && o.search == .greedy && o.shortlist == 4)
        #expect(o.pipelineOptions.map { "\($0.key)=\($0.value)" } == ["params=0.065", "unit=layer", "search=greedy", "shortlist=4"])
        #expect(try DepthPass.Options.parse([]).unit == .subBlock)
    }
    /// x / √(mean(x²) + ε) · w, as exporters decompose RMSNorm (the interpreter fuses the chain).
    static func rmsNorm(_ b: GraphBuilder, _ x: Value, _ name: String, _ rng: inout SeededRandom) -> Value {
        let p = b.add(.pow, [x, b.initializer("\(name).two", Tensor(floats: [2], shape: []))])
        let mean = b.add(OpType("ReduceMean"), [p], attributes: [("axes", .ints([-1])), ("keepdims", .int(1))])
        let r = b.add(.sqrt, [b.add(.add, [mean, b.initializer("\(name).eps", Tensor(floats: [1e-5], shape: []))])])
        return b.add(.mul, [b.add(.div, [x, r]), b.floats("\(name).w", [8], &rng, scale: 1)])
    }

    /// A causal LM over 11 token ids: an embedding, three pre-norm SiLU MLP blocks with biases
    /// (products with a bias, RMSNorm chains and elementwise regions, all fused in plain runs) and
    /// logits [batch, 6, 11] through a final norm.
    static func decoder() -> Model {
        var rng = SeededRandom(21)
        let b = GraphBuilder(name: "decoder")
        let ids = b.input("ids", .int64, [.symbol("batch"), .known(6)])
        var s = b.add(.gather, [b.floats("embed", [11, 8], &rng, scale: 1), ids], attributes: [("axis", .int(0))])
        for k in 0 ..< 3 {
            let h = b.add(.add, [b.add(.matMul, [rmsNorm(b, s, "norm\(k)", &rng), b.floats("mlp\(k).w1", [8, 16], &rng, scale: 0.5)]),
                                 b.floats("mlp\(k).b1", [16], &rng, scale: 0.1)])
            let silu = b.add(.mul, [h, b.add(.sigmoid, [h])])
            s = b.add(.add, [s, b.add(.matMul, [silu, b.floats("mlp\(k).w2", [16, 8], &rng, scale: 0.5)])], name: "mlp\(k)")
        }
        b.output(b.add(.matMul, [rmsNorm(b, s, "final", &rng), b.floats("head", [8, 11], &rng, scale: 1)]))
        let m = b.model(opset: 17)
        ShapeInference().run(on: m)
        return m
    }

    /// The perplexities `depth` scores with (calibration sets joined into one batch, the cone below
    /// the skipped block rerun on the fused plan, cross-entropy on two threads) are those of whole
    /// node-by-node runs of each set, to float rounding.
    @Test func fusedBatchedRerunsScoreLikeWholeRunsOfEachSet() throws {
        let model = Self.decoder()
        var rng = SeededRandom(8)
        let calib = (0 ..< 3).map { _ in ["ids": NDArray((0 ..< 12).map { _ in Int64(rng.int(below: 11)) }, shape: [2, 6])] }
        let gates = try TrainableGates(model: model.copy(), kinds: [.blocks])
        #expect(gates.blocks.count == 3)
        let eval = try BlockEvaluator(gates: gates, context: PassContext(threads: 2, calibration: calib), holdout: 0)
        #expect(eval.isCausalLM)
        eval.joinSets()
        #expect(eval.scoring.count == 1 && eval.scoring[0]["ids"]?.shape == [6, 6])

        let logits = try #require(eval.logits)
        let reference = try Interpreter(model: gates.trainingModel, options: .init(threads: 1, fuse: false))
        func wholeRuns(_ skip: [Double]) throws -> Double {
            var total = 0.0, n = 0
            for set in calib {
                let out = try reference.runRecording(set.merging(gates.feeds([], blocks: skip)) { a, _ in a }).outputs
                let y = try #require(out[logits])
                let (ce, k) = CausalLM.crossEntropy(logits: y, ids: set["ids"]!)
                total += ce * Double(k)
                n += k
            }
            return Foundation.exp(total / Double(n))
        }
        for skip in [[1.0, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 1, 0]] {
            let fast = try eval.perplexity(skipping: skip, heldOut: false)
            let slow = try wholeRuns(skip)
            #expect(abs(fast - slow) <= 1e-5 * slow, "skipping \(skip): \(fast) against \(slow)")
            // Held out with holdout=0: the same recording.
            #expect(try eval.perplexity(skipping: skip, heldOut: true) == fast)
        }
        // Skipping a block changes the scores, so agreement is not a stale recording read back.
        #expect(abs(try wholeRuns([1, 0, 1]) - wholeRuns([1, 1, 1])) > 1e-3)
    }
}
