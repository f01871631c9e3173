import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

@testable import PruneKit

/// Attention heads and MLP neurons pruned on models with a dynamic batch and sequence: the masked
/// model (gates) and the folded model (smaller weights, rewritten shape constants) must compute
/// the same outputs at several shapes, with weights and parameter counts checked by hand.
@Suite struct HeadPruningTests {
    // MARK: BERT (both exporters)

    /// Per BERT head: 16 columns of Q, K and V (64 rows each) and their 16 biases, 16 rows of O.
    static let bertParamsPerHead = 3 * (64 * 16 + 16) + 16 * 64

    static func bertInputs(batch: Int, sequence: Int, seed: UInt64) -> [String: NDArray] {
        var rng = SeededRandom(seed)
        let ids = (0 ..< batch * sequence).map { _ in Int64(rng.int(below: 1000)) }
        var mask: [Int64] = []
        for r in 0 ..< batch {
            // Row 0 is full; later rows end in padding.
            let valid = sequence - r * sequence / 4
            mask += (0 ..< sequence).map { $0 < valid ? 1 : 0 }
        }
        return ["input_ids": NDArray(ids, shape: [batch, sequence]), "attention_mask": NDArray(mask, shape: [batch, sequence])]
    }

    @Test(arguments: ["bert.onnx", "bert.dynamo.onnx"])
    func bertHeadsFoldToTheMaskedModel(file: String) throws {
        let url = TestPaths.examples.appendingPathComponent(file)
        let original = try ModelImporter.load(contentsOf: url)
        let masked = try ModelImporter.load(contentsOf: url)
        let folded = try ModelImporter.load(contentsOf: url)

        // One head of 4 goes in layer 0, two in layer 1.
        let removed = [[1], [0, 3]]
        let maskedHeads = PruningGroups.analyze(masked).groups(of: [.heads])
        #expect(maskedHeads.map(\.unitCount) == [4, 4])
        #expect(maskedHeads.allSatisfy { $0.paramsPerUnit == Array(repeating: Self.bertParamsPerHead, count: 4) })
        #expect(Self.bertParamsPerHead == 4144)
        let masks = removed.map { PruneCheck.keep(4, removing: $0) }
        for (g, m) in zip(maskedHeads, masks) { try Masks.set(m, for: g, in: masked) }
        #expect(PruneCheck.gateCount(masked) == 2)
        // The analysis reads the gates back as the groups' masks.
        #expect(PruningGroups.analyze(masked).groups(of: [.heads]).map(\.maskValues) == masks)

        let heads = PruningGroups.analyze(folded).groups(of: [.heads])
        #expect(heads.map(\.name) == maskedHeads.map(\.name))
        // Q, K, V weights (columns) and biases, and O's rows: 7 slices per layer.
        for g in heads {
            let p = g.parameters
            #expect(p.count == 7, "\(g)")
            #expect(p.filter { $0.value.constantValue?.shape == [64, 64] && $0.axis == 1 }.count == 3)
            #expect(p.filter { $0.value.constantValue?.shape == [64] && $0.axis == 0 }.count == 3)
            #expect(p.filter { $0.value.constantValue?.shape == [64, 64] && $0.axis == 0 }.count == 1)
        }
        for (g, m) in zip(heads, masks) { try Masks.set(m, for: g, in: folded) }
        let expected = try ExpectedCuts(groups: heads, masks: masks)
        let biasNames = heads.flatMap { g in g.parameters.filter { $0.value.constantValue?.shape.count == 1 }.map(\.value.name) }
        let summary = try MaskFolding.fold(folded)
        #expect(summary.groups == 2 && summary.unitsRemoved == [.heads: 3] && summary.gatesRemoved == 2)
        #expect(PruneCheck.gateCount(folded) == 0 && !folded.graph.initializers.contains { Masks.isMask($0) })

        // Every sliced weight is the original with the kept heads' rows or columns.
        #expect(expected.cuts.count == 14)
        #expect(try expected.mismatches(in: folded) == [])
        for (g, kept) in zip(heads, [3, 2]) {
            let q = try #require(folded.graph.node(named: g.name))
            #expect(q.opType == .matMul && q.inputs[1]?.constantValue?.shape == [64, 16 * kept])
            for sl in g.parameters {
                guard let node = folded.graph.node(named: sl.node!.name), case .parameter(_, let input) = sl.target else { continue }
                let shape = node.inputs[input]?.constantValue?.shape
                switch (sl.value.constantValue?.shape.count, sl.axis) {
                case (2, 1): #expect(shape == [64, 16 * kept])
                case (1, 0): #expect(shape == [16 * kept])
                default: #expect(shape == [16 * kept, 64])
                }
            }
        }
        // The exporters deduplicate equal initializers, and every bias of this untrained BERT is
        // zero: Q, K and V read the one vector 'model.embeddings.LayerNorm.bias' that 15 or 16
        // nodes share. Folding cuts a copy for each layer (48 and 32 elements; Q, K and V share
        // it) and leaves the original to its other readers. So the 3 heads remove their weights,
        // 3 × (3 × 64 × 16 + 16 × 64), and the model gains the two copies.
        #expect(biasNames.count == 6 && Set(biasNames) == ["model.embeddings.LayerNorm.bias"])
        #expect(original.graph.value(named: "model.embeddings.LayerNorm.bias")?.uses.count == (file == "bert.onnx" ? 16 : 15))
        #expect(folded.graph.value(named: "model.embeddings.LayerNorm.bias")?.initializer?.shape == [64])
        let weightsRemoved = (1 + 2) * (3 * 64 * 16 + 16 * 64), copies = 48 + 32
        #expect(weightsRemoved - copies == 12208)
        #expect(CostModel.parameterCount(original) - CostModel.parameterCount(folded) == weightsRemoved - copies)
        #expect(PruneCheck.floatParams(original) - PruneCheck.floatParams(folded) == weightsRemoved - copies)

        // The folded model has 3 and 2 heads; the exporters name the head count -1 in every split
        // reshape, so the targets stay as they were: [b, s, -1, 16].
        let after = PruningGroups.analyze(folded).groups(of: [.heads])
        #expect(after.map(\.unitCount) == [3, 2])
        var headSplits: [(value: Value, heads: Int)] = []
        for g in after {
            let splits = g.slices.filter { !$0.isParameter && $0.value.producer?.opType == .reshape && $0.size == g.unitCount }
            #expect(splits.count == 3, "\(g): the Q, K and V head splits")
            for sl in splits {
                let target = try #require(sl.value.producer?.inputs[1]?.producer)
                #expect(target.opType == .concat)
                #expect(try target.inputs.compactMap { try $0?.constantValue?.int64s() } == [[-1], [16]])
                headSplits.append((sl.value, g.unitCount))
            }
        }
        for (v, _) in headSplits { folded.graph.outputs.append(v) }

        for (batch, sequence, seed) in [(2, 8, UInt64(1)), (3, 23, 2)] {
            let feeds = Self.bertInputs(batch: batch, sequence: sequence, seed: seed)
            let m = try PruneCheck.run(masked, feeds), f = try PruneCheck.run(folded, feeds), o = try PruneCheck.run(original, feeds)
            for out in ["last_hidden_state", "pooler_output"] {
                let diff = PruneCheck.maxAbsDiff(try #require(m[out]), try #require(f[out]))
                #expect(diff <= 1e-5, "\(file) \(batch)×\(sequence) \(out): masked vs folded \(diff)")
                #expect(PruneCheck.maxAbsDiff(o[out]!, m[out]!) > 1e-3, "the masks change \(out)")
            }
            #expect(f["last_hidden_state"]?.shape == [batch, sequence, 64])
            // At run time the head splits produce [b, s, kept heads, 16].
            for (v, kept) in headSplits { #expect(f[v.name]?.shape == [batch, sequence, kept, 16], "\(v.name)") }
        }
    }

    // MARK: A decoder built in code

    /// How the torch exporters write the reshape targets of a decoder with dynamic batch and sequence.
    enum DecoderStyle: String, CaseIterable, Sendable {
        /// TorchScript: `Concat(Unsqueeze(Gather(Shape(x), 0)), Unsqueeze(Gather(Shape(x), 1)), [4], [16])`,
        /// one per reshape, with `Constant` nodes; merge `[b, s, 64]`; causal mask from `Trilu`.
        case legacy
        /// As `legacy`, but Q, K and V read one shared target `Concat`.
        case legacyShared
        /// torch.export: `Concat(Shape(x)[0:1], Shape(x)[1:2], [-1], [16])` shared, initializers;
        /// merge `[b, s, -1]`; causal mask sliced from a constant table.
        case dynamo
    }

    static let width = 64, headCount = 4, headSize = 16, hidden = 128

    /// x → causal self-attention (Q/K/V/O with biases) → + x → LayerNorm → SwiGLU MLP → + → y.
    static func decoder(_ style: DecoderStyle) -> Model {
        var rng = SeededRandom(17)
        let b = GraphBuilder(name: "decoder")
        let d = width
        let x = b.input("x", .float, [Dim.symbol("batch"), .symbol("seq"), .known(d)])
        let seq: Value
        let splitTarget: () -> Value
        let mergeTarget: Value
        switch style {
        case .legacy, .legacyShared:
            let shape = b.add(.shape, [x], name: "Shape")
            func dim(_ i: Int64) -> Value {
                let g = b.add(.gather, [shape, b.constant(scalar: i)], attributes: [("axis", .int(0))], name: "Gather")
                return b.add(.unsqueeze, [g, b.constant([0])], name: "Unsqueeze")
            }
            let batchDim = dim(0), seqDim = dim(1)
            let split = {
                b.add(.concat, [batchDim, seqDim, b.constant([Int64(headCount)]), b.constant([Int64(headSize)])],
                      attributes: [("axis", .int(0))], name: "Concat")
            }
            if style == .legacyShared {
                let shared = split()
                splitTarget = { shared }
            } else {
                splitTarget = split
            }
            mergeTarget = b.add(.concat, [batchDim, seqDim, b.constant([Int64(d)])], attributes: [("axis", .int(0))], name: "Concat")
            seq = seqDim
        case .dynamo:
            let batchDim = b.add(.shape, [x], attributes: [("start", .int(0)), ("end", .int(1))], name: "Shape")
            let seqDim = b.add(.shape, [x], attributes: [("start", .int(1)), ("end", .int(2))], name: "Shape")
            let minusOne = b.int64s("val_minus_one", [-1])
            let split = b.add(.concat, [batchDim, seqDim, minusOne, b.int64s("val_head_size", [Int64(headSize)])],
                              attributes: [("axis", .int(0))], name: "Concat")
            splitTarget = { split }
            mergeTarget = b.add(.concat, [batchDim, seqDim, minusOne], attributes: [("axis", .int(0))], name: "Concat")
            seq = seqDim
        }

        // Additive causal mask [s, s]: 0 on and below the diagonal, -1e9 above; broadcast over heads.
        let causal: Value
        let squareShape = b.add(.concat, [seq, seq], attributes: [("axis", .int(0))], name: "Concat")
        switch style {
        case .legacy, .legacyShared:
            let ones = b.add(.constantOfShape, [squareShape], attributes: [("value", .tensor(Tensor(floats: [1], shape: [1])))])
            let lower = b.add(OpType("Trilu"), [ones], attributes: [("upper", .int(0))], name: "Trilu")
            causal = b.add(.mul, [b.add(.sub, [lower, b.constant(float: 1)]), b.constant(float: 1e9)], name: "causal")
        case .dynamo:
            let n = 32
            let table = (0 ..< n * n).map { i -> Float in i % n > i / n ? -1e9 : 0 }
            causal = b.add(.slice, [b.initializer("causal_table", Tensor(floats: table, shape: [n, n])), b.int64s("zeros", [0, 0]), squareShape,
                                    b.int64s("axes", [0, 1])], name: "causal")
        }

        func heads(_ name: String, perm: [Int64]) -> Value {
            let p = b.linear(x, name, d, d, &rng)
            let r = b.add(.reshape, [p, splitTarget()], name: "\(name)/Reshape")
            return b.add(.transpose, [r], attributes: [("perm", .ints(perm))], name: "\(name)/Transpose")
        }
        let q = heads("q", perm: [0, 2, 1, 3]), k = heads("k", perm: [0, 2, 3, 1]), v = heads("v", perm: [0, 2, 1, 3])
        let scores = b.add(.mul, [b.add(.matMul, [q, k], name: "scores/MatMul"), b.constant(float: 0.25)], name: "scores/Mul")
        let probs = b.add(.softmax, [b.add(.add, [scores, causal], name: "mask/Add")], attributes: [("axis", .int(-1))], name: "Softmax")
        let context = b.add(.transpose, [b.add(.matMul, [probs, v], name: "context/MatMul")], attributes: [("perm", .ints([0, 2, 1, 3]))],
                            name: "context/Transpose")
        let merged = b.add(.reshape, [context, mergeTarget], name: "merge/Reshape")
        let h1 = b.add(.add, [x, b.linear(merged, "o", d, d, &rng)], name: "residual/Add")
        let gamma = b.initializer("ln.weight", Tensor(floats: rng.floats(d, scale: 0.2).map { $0 + 1 }, shape: [d]))
        let n1 = b.add(.layerNormalization, [h1, gamma, b.floats("ln.bias", [d], &rng, scale: 0.1)],
                       attributes: [("axis", .int(-1)), ("epsilon", .float(1e-5))], name: "LayerNorm")
        let gate = b.linear(n1, "gate", d, hidden, &rng), up = b.linear(n1, "up", d, hidden, &rng)
        let silu = b.add(.mul, [b.add(.sigmoid, [gate], name: "Sigmoid"), gate], name: "silu")
        let down = b.linear(b.add(.mul, [silu, up], name: "swiglu"), "down", hidden, d, &rng)
        b.output(b.add(.add, [n1, down], name: "mlp/Add"))
        return b.model(opset: style == .dynamo ? 18 : 17)
    }

    /// The Concat target of a reshape node: its constant pieces, in order.
    static func targetConstants(_ model: Model, reshape: String) throws -> [[Int64]] {
        let node = try #require(model.graph.node(named: reshape))
        let concat = try #require(node.inputs[1]?.producer)
        #expect(concat.opType == .concat)
        return try concat.inputs.compactMap { try $0?.constantValue?.int64s() }
    }

    @Test(arguments: DecoderStyle.allCases)
    func decoderHeadsAndNeuronsFoldToTheMaskedModel(style: DecoderStyle) throws {
        let original = Self.decoder(style)
        let masked = Self.decoder(style)
        let folded = Self.decoder(style)

        let analysis = PruningGroups.analyze(masked)
        #expect(analysis.groups.map(\.kind) == [.heads, .neurons])
        #expect(analysis.groups.map(\.name) == ["q/MatMul", "gate/MatMul"])
        #expect(analysis.groups.map(\.unitCount) == [Self.headCount, Self.hidden])
        // A head: 16 columns of Q, K, V with biases and 16 rows of O. A neuron: a column of the gate
        // and up projections with their biases and a row of the down projection.
        let perHead = 3 * (64 * 16 + 16) + 16 * 64, perNeuron = 2 * (64 + 1) + 64
        #expect(analysis.groups[0].paramsPerUnit == Array(repeating: perHead, count: 4))
        #expect(analysis.groups[1].paramsPerUnit == Array(repeating: perNeuron, count: 128))
        #expect(analysis.blocked.count == 2)
        #expect(analysis.blocked.allSatisfy { $0.kind == .neurons && $0.unitCount == Self.width })

        var rng = SeededRandom(23)
        let masks = [PruneCheck.keep(4, removing: [2]), PruneCheck.keep(128, removing: rng.choose(32, of: 128))]
        for (g, m) in zip(analysis.groups, masks) { try Masks.set(m, for: g, in: masked) }
        let groups = PruningGroups.analyze(folded).groups
        for (g, m) in zip(groups, masks) { try Masks.set(m, for: g, in: folded) }
        let expected = try ExpectedCuts(groups: groups, masks: masks)
        let summary = try MaskFolding.fold(folded)
        #expect(summary.unitsRemoved == [.heads: 1, .neurons: 32] && summary.gatesRemoved == 2)
        #expect(PruneCheck.gateCount(folded) == 0)
        #expect(expected.cuts.count == 12)
        #expect(try expected.mismatches(in: folded) == [])

        func weight(_ node: String, _ input: Int = 1) -> [Int]? { folded.graph.node(named: node)?.inputs[input]?.constantValue?.shape }
        for p in ["q", "k", "v"] {
            #expect(weight("\(p)/MatMul") == [64, 48])
            #expect(weight("\(p)/Add") == [48])
        }
        #expect(weight("o/MatMul") == [48, 64] && weight("o/Add") == [64])
        #expect(weight("gate/MatMul") == [64, 96] && weight("up/MatMul") == [64, 96] && weight("gate/Add") == [96])
        #expect(weight("down/MatMul") == [96, 64])
        #expect(PruneCheck.floatParams(original) - PruneCheck.floatParams(folded) == perHead + 32 * perNeuron)
        #expect(perHead + 32 * perNeuron == 10352)

        // The shape constants: legacy targets now name 3 heads and 48 features; dynamo's -1 stays.
        for p in ["q", "k", "v"] {
            let c = try Self.targetConstants(folded, reshape: "\(p)/Reshape")
            #expect(c == (style == .dynamo ? [[-1], [16]] : [[3], [16]]), "\(style) \(p)")
        }
        #expect(try Self.targetConstants(folded, reshape: "merge/Reshape") == (style == .dynamo ? [[-1]] : [[48]]))
        // The original keeps its own constants.
        #expect(try Self.targetConstants(original, reshape: "q/Reshape") == (style == .dynamo ? [[-1], [16]] : [[4], [16]]))

        let split = try #require(folded.graph.node(named: "q/Reshape")?.outputs[0])
        folded.graph.outputs.append(split)
        let out = original.graph.outputs[0].name
        for (batch, sequence) in [(1, 5), (3, 11)] {
            var inputRNG = SeededRandom(UInt64(batch * 100 + sequence))
            let feeds = ["x": NDArray.random([batch, sequence, Self.width], &inputRNG)]
            let m = try PruneCheck.run(masked, feeds), f = try PruneCheck.run(folded, feeds), o = try PruneCheck.run(original, feeds)
            let diff = PruneCheck.maxAbsDiff(try #require(m[out]), try #require(f[out]))
            #expect(diff <= 1e-5, "\(style) \(batch)×\(sequence): masked vs folded \(diff)")
            #expect(PruneCheck.maxAbsDiff(o[out]!, m[out]!) > 1e-3, "the masks change the output")
            #expect(f[out]?.shape == [batch, sequence, Self.width])
            #expect(f[split.name]?.shape == [batch, sequence, 3, 16])
        }
    }

    /// The causal mask works in every style: a change to the last position leaves the others alone.
    @Test(arguments: DecoderStyle.allCases)
    func theDecoderIsCausal(style: DecoderStyle) throws {
        let m = Self.decoder(style)
        var rng = SeededRandom(31)
        let x = NDArray.random([2, 6, Self.width], &rng)
        var changed = x.scalars(as: Float.self)
        for b in 0 ..< 2 { for c in 0 ..< Self.width { changed[(b * 6 + 5) * Self.width + c] += 1 } }
        let out = m.graph.outputs[0].name
        let y0 = try PruneCheck.run(m, ["x": x])[out]!.scalars(as: Float.self)
        let y1 = try PruneCheck.run(m, ["x": NDArray(changed, shape: [2, 6, Self.width])])[out]!.scalars(as: Float.self)
        for b in 0 ..< 2 {
            for t in 0 ..< 6 {
                let r = ((b * 6 + t) * Self.width) ..< ((b * 6 + t + 1) * Self.width)
                let same = zip(y0[r], y1[r]).allSatisfy { $0 == $1 }
                #expect(same == (t < 5), "\(style) batch \(b) position \(t)")
            }
        }
    }
}
