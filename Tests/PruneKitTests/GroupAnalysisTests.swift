import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

@testable import PruneKit

/// The pruning-group analysis: the groups of every example model (counts taken from
/// `prunec inspect --groups`), and small graphs built in code where each rule can be checked by
/// hand: BN with its conv, residual adds, depthwise convs, concat offsets, and what closes a group.
@Suite struct GroupAnalysisTests {
    // MARK: Example models

    struct ExampleGroups: Sendable, CustomTestStringConvertible {
        let file: String
        /// Prunable groups by kind.
        let channels: Int, heads: Int, neurons: Int
        /// Units, parameters and gate sites of each prunable group, in model order.
        let units: [Int], params: [Int], gates: [Int]
        /// Kinds of the blocked groups.
        let blocked: [GroupKind]
        /// Parameters of each residual block.
        let blockParams: [Int]
        var testDescription: String { file }
    }

    static let examples: [ExampleGroups] = {
        let resnetUnits = [16, 16, 16, 32, 32, 32, 64, 64], ones8 = [Int](repeating: 1, count: 8)
        let bert = (units: [4, 128, 4, 128], params: [16576, 16512, 16576, 16512], blocked: [GroupKind](repeating: .neurons, count: 5))
        let llama = (units: [4, 128, 4, 128], params: [16384, 24576, 16384, 24576], blocks: [16384, 24576, 16384, 24576])
        // Conv channels tied by GroupNorm (8 groups; a unit is a norm group, 4 or 8 channels, and
        // the concatenated skip features of an up block join their group).
        let unetUnits = [128, 128, 11, 8, 8, 8, 128, 8, 8, 4, 8, 8, 8, 256, 8, 8, 8, 64, 8, 8, 8, 128, 8, 8, 8, 8, 128]
        let unetParams = [20608, 69760, 134096, 22672, 4096, 4096, 12544, 136640, 63760, 277504, 82192, 16384, 12288, 49664, 82192,
                          119056, 100624, 80000, 41104, 4096, 4096, 12544, 31888, 14720, 4096, 4096, 12544]
        let unetGates = [1, 1, 8, 1, 1, 1, 1, 4, 1, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
        // A block frees its branch's weights and those of the nodes that only feed it: a ResBlock's
        // time-embedding projection, a cross-attention's K/V projections of the text embedding.
        func unetBlocks(_ midCross: Int, _ midAttention: Int) -> [Int] {
            let down = [4128, 4128, 12576, 22944]
            return [22624] + down + [82112, 16448, midCross, 49728, midAttention, 82112] + down + down
        }
        let ditUnits = [32, 32, 4, 128, 32, 32, 4, 128], ditParams = [9248, 9600, 4192, 8320, 9248, 7552, 4192, 8320]
        return [
            ExampleGroups(file: "resnet.onnx", channels: 8, heads: 0, neurons: 0, units: resnetUnits,
                          params: [14960, 4672, 4672, 49024, 13952, 18560, 40064, 55552], gates: [3, 1, 1, 2, 1, 1, 1, 1],
                          blocked: [.neurons], blockParams: [4736, 4736, 18688]),
            ExampleGroups(file: "resnet.dynamo.onnx", channels: 8, heads: 0, neurons: 0, units: resnetUnits,
                          params: [14816, 4624, 4624, 48736, 13856, 18464, 39680, 55360], gates: [3, 1, 1, 2, 1, 1, 1, 1],
                          blocked: [.neurons], blockParams: [4640, 4640, 18496]),
            ExampleGroups(file: "bert.onnx", channels: 0, heads: 2, neurons: 2, units: bert.units, params: bert.params,
                          gates: [1, 1, 1, 1], blocked: bert.blocked, blockParams: [16384, 16384, 16384, 16384]),
            ExampleGroups(file: "bert.dynamo.onnx", channels: 0, heads: 2, neurons: 2, units: bert.units, params: bert.params,
                          gates: [1, 1, 1, 1], blocked: bert.blocked, blockParams: [16384, 16384, 16384, 16384]),
            ExampleGroups(file: "llama.onnx", channels: 0, heads: 2, neurons: 2, units: llama.units, params: llama.params,
                          gates: [1, 1, 1, 1], blocked: [.neurons, .neurons], blockParams: llama.blocks),
            ExampleGroups(file: "llama.dynamo.onnx", channels: 0, heads: 2, neurons: 2, units: llama.units, params: llama.params,
                          gates: [1, 1, 1, 1], blocked: [.neurons, .neurons], blockParams: llama.blocks),
            ExampleGroups(file: "unet.onnx", channels: 13, heads: 8, neurons: 6, units: unetUnits, params: unetParams,
                          gates: unetGates, blocked: [GroupKind](repeating: .channels, count: 5),
                          blockParams: unetBlocks(12352, 86976)),
            ExampleGroups(file: "unet.dynamo.onnx", channels: 13, heads: 8, neurons: 6, units: unetUnits, params: unetParams,
                          gates: unetGates, blocked: [GroupKind](repeating: .channels, count: 5),
                          blockParams: unetBlocks(12356, 86988)),
            ExampleGroups(file: "dit.onnx", channels: 0, heads: 2, neurons: 6, units: ditUnits, params: ditParams, gates: ones8,
                          blocked: [.channels, .neurons, .heads], blockParams: [4224, 8352, 4224, 8352]),
            ExampleGroups(file: "dit.dynamo.onnx", channels: 0, heads: 2, neurons: 6, units: ditUnits, params: ditParams, gates: ones8,
                          blocked: [.channels, .neurons, .heads], blockParams: [4224, 8352, 4224, 8352]),
        ]
    }()

    @Test(arguments: examples)
    func exampleModelGroups(_ e: ExampleGroups) throws {
        let model = try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent(e.file))
        let a = PruningGroups.analyze(model)
        #expect(a.groups(of: [.channels]).count == e.channels)
        #expect(a.groups(of: [.heads]).count == e.heads)
        #expect(a.groups(of: [.neurons]).count == e.neurons)
        #expect(a.groups.map(\.unitCount) == e.units)
        #expect(a.groups.map(\.params) == e.params)
        #expect(a.groups.map(\.gateSites.count) == e.gates)
        #expect(a.blocked.map(\.kind) == e.blocked)
        #expect(a.blocks.map(\.params) == e.blockParams)
        // Every prunable group holds parameters and has no masks yet; its gates cover every unit,
        // each site holding the units it holds equally often (once, or once per channel of a norm
        // group).
        for g in a.groups {
            #expect(g.maskValues == nil && g.blockedReason == nil && !g.parameters.isEmpty)
            #expect(g.paramsPerUnit.count == g.unitCount && g.params == g.paramsPerUnit.reduce(0, +))
            #expect(Set(g.gateSites.flatMap(\.units)) == Set(0 ..< g.unitCount), "\(g)")
            for site in g.gateSites {
                var counts: [Int: Int] = [:]
                for u in site.units { counts[u, default: 0] += 1 }
                #expect(Set(counts.values).count == 1 || g.kind == .channels, "\(g)")
                if g.kind != .channels { #expect(site.units.sorted() == Array(0 ..< g.unitCount), "\(g)") }
            }
        }
        #expect(a.blocked.allSatisfy { $0.blockedReason != nil && $0.gateSites.isEmpty })
        // Heads groups: every head holds the same parameters.
        for g in a.groups(of: [.heads]) { #expect(Set(g.paramsPerUnit).count == 1, "\(g)") }
    }

    // MARK: Built in code

    @Test func batchNormJoinsTheChannelsOfItsConv() throws {
        var rng = SeededRandom(1)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
        let stats = (0 ..< 4).map { i in b.initializer("bn.p\(i)", Tensor(floats: rng.floats(8, scale: 0.2).map { $0 + 1 }, shape: [8])) }
        let bn = b.add(.batchNormalization, [c1] + stats, name: "bn")
        let r = b.add(.relu, [bn], name: "relu")
        b.output(b.conv(r, "conv2", in: 8, out: 4, &rng))
        let a = PruningGroups.analyze(b.model())

        #expect(a.groups.count == 1)
        let g = try #require(a.groups.first)
        #expect(g.kind == .channels && g.name == "conv1" && g.unitCount == 8)
        #expect(Set(g.parameters.map(\.key)) == ["conv1#1@0", "conv1#2@0", "bn#1@0", "bn#2@0", "bn#3@0", "bn#4@0", "conv2#1@1"])
        #expect(g.parameters.allSatisfy { $0.units == Array(0 ..< 8) })
        #expect(Set(g.slices.filter { !$0.isParameter }.map(\.key)) == [c1.name + "@1", bn.name + "@1", r.name + "@1"])
        #expect(g.paramsPerUnit == Array(repeating: 27 + 1 + 4 + 4 * 9, count: 8))
        #expect(g.gateSites.map(\.value.name) == [r.name] && g.gateSites[0].axis == 1)
        // conv2's outputs are the graph output.
        #expect(a.blocked.map(\.name) == ["conv2"])
        #expect(a.blocked[0].blockedReason?.contains("graph output") == true)
    }

    /// GroupNormalization (opset 21: per-channel scale): a unit is a norm group of 4 channels;
    /// folding keeps a norm of 4 channels per group (num_groups rewritten) and the same outputs.
    @Test func groupNormTiesChannelsIntoNormGroups() throws {
        var rng = SeededRandom(5)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let c1 = b.conv(x, "conv1", in: 3, out: 16, &rng)
        let scale = b.initializer("gn.scale", Tensor(floats: rng.floats(16, scale: 0.2).map { $0 + 1 }, shape: [16]))
        let bias = b.initializer("gn.bias", Tensor(floats: rng.floats(16, scale: 0.2), shape: [16]))
        let gn = b.add(OpType("GroupNormalization"), [c1, scale, bias], attributes: [("num_groups", .int(4)), ("epsilon", .float(1e-5))], name: "gn")
        let r = b.add(.relu, [gn], name: "relu")
        b.output(b.conv(r, "conv2", in: 16, out: 4, &rng))
        let masked = b.model(opset: 21, irVersion: 10)
        let a = PruningGroups.analyze(masked)
        let g = try #require(a.groups(of: [.channels]).first)
        #expect(a.groups.count == 1 && g.unitCount == 4 && g.name == "conv1")
        #expect(g.paramsPerUnit == Array(repeating: 4 * (27 + 1 + 2 + 4 * 9), count: 4))
        try Masks.set([1, 0, 1, 0], for: g, in: masked)
        let folded = masked.copy()
        let summary = try MaskFolding.fold(folded)
        #expect(summary.unitsRemoved == [.channels: 2])
        let node = try #require(folded.graph.nodes.first { $0.opType.name == "GroupNormalization" })
        #expect((try node.attribute("num_groups", as: Int.self)) == 2)
        #expect(node.inputs[1]?.constantValue?.shape == [8])
        let feeds = ["x": NDArray.random([1, 3, 8, 8], &rng)]
        let diff = try PruneCheck.compare(masked, folded, feeds)
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    /// A UNet up block in small: convA (6 channels) and a skip convB (2 channels) are concatenated
    /// and normalized in 2 groups of 4, so one norm group holds convA's last two channels and both
    /// of convB's. convB's output (also read by convD) holds only that unit: removing it would
    /// leave convB and convD with no channels. Selection keeps it and removes the other unit
    /// instead; fold-masks refuses masks that empty it.
    @Test func aTensorHoldingSomeUnitsKeepsOne() throws {
        func net() -> Model {
            var rng = SeededRandom(21)
            let b = GraphBuilder()
            let x = b.input("x", .float, [1, 3, 8, 8])
            let ca = b.conv(x, "convA", in: 3, out: 6, &rng)
            let cb = b.conv(x, "convB", in: 3, out: 2, &rng)
            let cat = b.add(.concat, [ca, cb], attributes: [("axis", .int(1))], name: "concat")
            let scale = b.initializer("gn.scale", Tensor(floats: rng.floats(8, scale: 0.2).map { $0 + 1 }, shape: [8]))
            let bias = b.initializer("gn.bias", Tensor(floats: rng.floats(8, scale: 0.2), shape: [8]))
            let gn = b.add(OpType("GroupNormalization"), [cat, scale, bias], attributes: [("num_groups", .int(2)), ("epsilon", .float(1e-5))], name: "gn")
            let y = b.conv(b.add(.relu, [gn], name: "relu"), "convC", in: 8, out: 4, &rng)
            let z = b.conv(cb, "convD", in: 2, out: 4, &rng)
            b.output(b.add(.add, [y, z], name: "sum"))
            return b.model(opset: 21, irVersion: 10)
        }
        let m = net()
        let g = try #require(PruningGroups.analyze(m).groups(of: [.channels]).first { $0.name == "convA" })
        #expect(g.unitCount == 2)
        let wb = try #require(g.slice("convB#1@0"))
        let skip = wb.units[0]
        #expect(Set(wb.units) == [skip] && g.partialUnitSets == [[skip]])

        // The skip's unit scores lowest: plain ranking would remove it; the set keeps it.
        let candidates = (0 ..< 2).map { UnitSelection.Candidate(group: 0, unit: $0, score: $0 == skip ? 0.1 : 1, params: 1, macs: 1) }
        let target = PruningTarget(measure: .sparsity, amount: 0.5, global: false)
        let plain = try UnitSelection.select(unitCounts: [2], names: ["convA"], candidates: candidates, target: target, totalParams: 2, totalMACs: 2)
        #expect(plain[0][skip] == false)
        let kept = try UnitSelection.select(unitCounts: [2], names: ["convA"], candidates: candidates, target: target, totalParams: 2,
                                            totalMACs: 2, keepOneOf: [g.partialUnitSets])
        #expect(kept[0][skip] && !kept[0][1 - skip])

        // Masks that remove the skip's unit do not fold into a zero-channel conv.
        let emptied = net()
        let ge = try #require(PruningGroups.analyze(emptied).groups(of: [.channels]).first { $0.name == "convA" })
        try Masks.set(PruneCheck.keep(2, removing: [skip]), for: ge, in: emptied)
        let error = #expect(throws: MaskFoldError.self) { try MaskFolding.fold(emptied) }
        guard case .emptiedTensor(let name, let value, _)? = error else {
            Issue.record("expected .emptiedTensor, got \(String(describing: error))")
            return
        }
        // convB's output, or (where the analysis lists it first) a tensor only convB's unit reaches.
        let convB = try #require(emptied.graph.node(named: "convB"))
        let onlySkip = Set([convB.outputs[0].name] + convB.inputs.compactMap { $0?.name } + (convB.outputs[0].uses.flatMap { $0.node.outputs.map(\.name) }))
        #expect(name == "convA" && onlySkip.contains(value), "\(value) not in \(onlySkip)")

        // The kept masks fold to the same outputs: convA keeps 2 channels, convB both.
        try Masks.set(kept[0].map { $0 ? 1 : 0 }, for: g, in: m)
        let folded = m.copy()
        try MaskFolding.fold(folded)
        #expect(folded.graph.node(named: "convA")?.inputs[1]?.constantValue?.shape == [2, 3, 3, 3])
        #expect(folded.graph.node(named: "convB")?.inputs[1]?.constantValue?.shape == [2, 3, 3, 3])
        var rng = SeededRandom(22)
        let diff = try PruneCheck.compare(m, folded, ["x": .random([1, 3, 8, 8], &rng)])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    /// A dense MLP written with Einsum (jax2tf, TF exports): the hidden letter is a neurons group
    /// from the first Einsum's weight columns to the second's rows; folded = masked.
    @Test func einsumDenseLayersAreANeuronsGroup() throws {
        var rng = SeededRandom(9)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 4, 8])
        let w1 = b.initializer("w1", Tensor(floats: rng.floats(8 * 16, scale: 0.3), shape: [8, 16]))
        let b1 = b.initializer("b1", Tensor(floats: rng.floats(16, scale: 0.1), shape: [16]))
        let w2 = b.initializer("w2", Tensor(floats: rng.floats(16 * 8, scale: 0.3), shape: [16, 8]))
        let h = b.add(OpType("Einsum"), [x, w1], attributes: [("equation", .string("bsd,df->bsf"))], name: "up")
        let r = b.add(.relu, [b.add(.add, [h, b1], name: "bias")], name: "relu")
        let y = b.add(OpType("Einsum"), [r, w2], attributes: [("equation", .string("bsf,fd->bsd"))], name: "down")
        b.output(b.add(.add, [y, x], name: "residual"))
        let masked = b.model()
        let a = PruningGroups.analyze(masked)
        let g = try #require(a.groups(of: [.neurons]).first)
        #expect(a.groups.count == 1 && g.unitCount == 16 && g.name == "up")
        #expect(g.paramsPerUnit == Array(repeating: 8 + 1 + 8, count: 16))
        try Masks.set((0 ..< 16).map { $0 % 3 == 0 ? 0 : 1 }, for: g, in: masked)
        let folded = masked.copy()
        let summary = try MaskFolding.fold(folded)
        #expect(summary.unitsRemoved == [.neurons: 6])
        #expect(folded.graph.initializers.first { $0.name == "w1" }?.initializer?.shape == [8, 10])
        let diff = try PruneCheck.compare(masked, folded, ["x": NDArray.random([1, 4, 8], &rng)])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    /// paddle2onnx adds a conv's bias as `Add(conv, Reshape(Constant[C], [1, C, 1, 1]))`: the
    /// reshaped constant is a weight of the channel group, cut on fold.
    @Test func aReshapedConstantBiasJoinsTheChannelGroup() throws {
        var rng = SeededRandom(5)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let bias = b.add(.constant, [], attributes: [("value", .tensor(Tensor(floats: rng.floats(8, scale: 0.2), shape: [8])))], name: "bias_const")
        let shape = b.initializer("shape", Tensor(int64s: [1, 8, 1, 1], shape: [4]))
        let biased = b.add(.add, [b.conv(x, "convA", in: 3, out: 8, &rng), b.add(.reshape, [bias, shape], name: "bias_reshape")], name: "bias_add")
        b.output(b.conv(b.add(.relu, [biased], name: "relu"), "convB", in: 8, out: 4, &rng))
        let masked = b.model()
        ShapeInference().run(on: masked)
        let a = PruningGroups.analyze(masked)
        let g = try #require(a.groups(of: [.channels]).first { $0.unitCount == 8 }, "\(a.groups.map(\.name))")
        #expect(g.isPrunable, "\(g.blockedReason ?? "")")
        try Masks.set((0 ..< 8).map { $0 % 4 == 0 ? 0 : 1 }, for: g, in: masked)
        let folded = masked.copy()
        _ = try MaskFolding.fold(folded)
        let diff = try PruneCheck.compare(masked, folded, ["x": NDArray.random([1, 3, 8, 8], &rng)])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
        #expect(CostModel.parameterCount(folded) < CostModel.parameterCount(masked))
    }

    @Test func aResidualAddMakesOneGroupOfBothConvs() throws {
        var rng = SeededRandom(2)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let a0 = b.add(.relu, [b.conv(x, "convA", in: 3, out: 8, &rng)], name: "relu")
        let sum = b.add(.add, [a0, b.conv(a0, "convB", in: 8, out: 8, &rng)], name: "add")
        b.output(b.conv(sum, "convC", in: 8, out: 4, &rng))
        let a = PruningGroups.analyze(b.model())

        #expect(a.groups.count == 1)
        let g = try #require(a.groups.first)
        #expect(g.unitCount == 8)
        let convA = try #require(g.slice("convA#1@0")), convBOut = try #require(g.slice("convB#1@0"))
        let convBIn = try #require(g.slice("convB#1@1")), convC = try #require(g.slice("convC#1@1"))
        // Channel i of convA is channel i of convB: the same unit.
        #expect(convA.units == convBOut.units && convA.units == convBIn.units && convA.units == convC.units)
        #expect(Set(convA.units).count == 8)
        #expect(g.paramsPerUnit == Array(repeating: 27 + 1 + 72 + 1 + 72 + 36, count: 8))
        // Gates on both consumers' inputs: convB reads the ReLU, convC reads the sum.
        #expect(Set(g.gateSites.map(\.value.name)) == [a0.name, sum.name])
        #expect(a.blocks.count == 1 && a.blocks[0].name == "add" && a.blocks[0].branch.map(\.name) == ["convB"])
        #expect(a.blocks[0].params == 8 * 8 * 9 + 8)
    }

    @Test func aDepthwiseConvPassesChannelsThrough() throws {
        var rng = SeededRandom(3)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
        let dw = b.conv(c1, "dw", in: 8, out: 8, group: 8, &rng)
        let r = b.add(.relu, [dw], name: "relu")
        b.output(b.conv(r, "conv2", in: 8, out: 4, kernel: 1, &rng))
        let m = b.model()
        let a = PruningGroups.analyze(m)

        #expect(a.groups.count == 1)
        let g = try #require(a.groups.first)
        #expect(g.name == "conv1" && g.unitCount == 8)
        #expect(Set(g.parameters.map(\.key)) == ["conv1#1@0", "conv1#2@0", "dw#1@0", "dw#2@0", "conv2#1@1"])
        #expect(g.parameters.allSatisfy { $0.units == Array(0 ..< 8) })
        #expect(g.paramsPerUnit == Array(repeating: 27 + 1 + 9 + 1 + 4, count: 8))
        // The depthwise conv does not contract channels: the only gate is before conv2.
        #expect(g.gateSites.map(\.value.name) == [r.name])

        // Folding two channels away keeps the depthwise conv's group count equal to its channels.
        let masked = m
        try Masks.set(PruneCheck.keep(8, removing: [2, 5]), for: g, in: masked)
        let reference = try PruneCheck.run(masked, ["x": Self.input([1, 3, 8, 8])])
        try MaskFolding.fold(masked)
        let dwNode = try #require(masked.graph.node(named: "dw"))
        #expect(dwNode.inputs[1]?.constantValue?.shape == [6, 1, 3, 3])
        #expect(try dwNode.attribute("group", as: Int.self) == 6)
        let after = try PruneCheck.run(masked, ["x": Self.input([1, 3, 8, 8])])
        let out = masked.graph.outputs[0].name
        #expect(PruneCheck.maxAbsDiff(reference[out]!, after[out]!) <= 1e-5)
    }

    @Test func aGroupedConvThatIsNotDepthwiseBlocks() throws {
        var rng = SeededRandom(4)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
        b.output(b.conv(c1, "grouped", in: 8, out: 8, group: 2, &rng))
        let a = PruningGroups.analyze(b.model())
        #expect(a.groups.isEmpty)
        let g = try #require(a.blocked.first { $0.name == "conv1" })
        #expect(g.blockedReason?.contains("grouped convolution (group 2)") == true)
    }

    @Test func concatenatedConvsKeepTheirOffsets() throws {
        var rng = SeededRandom(5)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let ca = b.conv(x, "convA", in: 3, out: 4, &rng)
        let cb = b.conv(x, "convB", in: 3, out: 6, &rng)
        let cat = b.add(.concat, [ca, cb], attributes: [("axis", .int(1))], name: "concat")
        b.output(b.conv(cat, "convC", in: 10, out: 5, kernel: 1, &rng))
        let m = b.model()
        let a = PruningGroups.analyze(m)

        // Both convs reach convC's one weight: one group of 4 + 6 units.
        #expect(a.groups.count == 1)
        let g = try #require(a.groups.first)
        #expect(g.unitCount == 10)
        let wa = try #require(g.slice("convA#1@0")), wb = try #require(g.slice("convB#1@0")), wc = try #require(g.slice("convC#1@1"))
        #expect(wa.size == 4 && wb.size == 6 && wc.size == 10)
        #expect(Array(wc.units[0 ..< 4]) == wa.units)
        #expect(Array(wc.units[4 ..< 10]) == wb.units)
        #expect(Set(wa.units + wb.units).count == 10)
        #expect(g.paramsPerUnit == Array(repeating: 27 + 1 + 5, count: 10))
        #expect(g.gateSites.map(\.value.name) == [cat.name])

        // Remove input channel 1 of convA and 3 of convB: convC loses inputs 1 and 4 + 3.
        let removed = [wa.units[1], wb.units[3]]
        let wcBefore = try #require(m.graph.node(named: "convC")?.inputs[1]?.constantValue)
        try Masks.set(PruneCheck.keep(10, removing: removed), for: g, in: m)
        let input = ["x": Self.input([1, 3, 8, 8])]
        let reference = try PruneCheck.run(m, input)
        try MaskFolding.fold(m)
        #expect(m.graph.node(named: "convA")?.inputs[1]?.constantValue?.shape == [3, 3, 3, 3])
        #expect(m.graph.node(named: "convB")?.inputs[1]?.constantValue?.shape == [5, 3, 3, 3])
        let wcAfter = try #require(m.graph.node(named: "convC")?.inputs[1]?.constantValue)
        #expect(try wcAfter.floats() == wcBefore.selecting([0, 2, 3, 4, 5, 6, 8, 9], along: 1).floats())
        let after = try PruneCheck.run(m, input)
        let out = m.graph.outputs[0].name
        #expect(PruneCheck.maxAbsDiff(reference[out]!, after[out]!) <= 1e-5)
    }

    /// A conv flattened into a classifier: the Gemm's rows come in runs of H·W per channel, and
    /// the group is still channels (a merge after the layer is not a head split).
    @Test func aConvFlattenedIntoAClassifierIsAChannelsGroup() throws {
        func net() -> Model {
            var rng = SeededRandom(10)
            let b = GraphBuilder()
            let x = b.input("x", .float, [Dim.symbol("N"), .known(3), .known(6), .known(6)])
            let c1 = b.add(.relu, [b.conv(x, "conv1", in: 3, out: 4, &rng)])
            let flat = b.add(.flatten, [c1], attributes: [("axis", .int(1))], name: "flatten")
            b.output(b.add(.gemm, [flat, b.floats("fc.weight", [144, 10], &rng, scale: 0.1), b.floats("fc.bias", [10], &rng, scale: 0.1)], name: "fc"))
            return b.model()
        }
        let m = net()
        let a = PruningGroups.analyze(m)
        #expect(a.groups.count == 1)
        let g = try #require(a.groups.first)
        #expect(g.kind == .channels)
        #expect(g.name == "conv1" && g.unitCount == 4)
        let fc = try #require(g.slice("fc#1@0"))
        #expect(fc.units == (0 ..< 144).map { g.slice("conv1#1@0")!.units[$0 / 36] })
        #expect(g.paramsPerUnit == Array(repeating: 27 + 1 + 36 * 10, count: 4))

        let folded = net()
        let mask = PruneCheck.keep(4, removing: [2])
        try Masks.set(mask, for: g, in: m)
        let toFold = try #require(PruningGroups.analyze(folded).groups.first)
        try Masks.set(mask, for: toFold, in: folded)
        try MaskFolding.fold(folded)
        #expect(folded.graph.node(named: "fc")?.inputs[1]?.constantValue?.shape == [108, 10])
        let diff = try PruneCheck.compare(m, folded, ["x": Self.input([2, 3, 6, 6])])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    /// `x → fc1 → (op) → fc2`, with x `[2, 4, 16]` and fc1 producing 32 features.
    static func mlp(_ middle: (GraphBuilder, Value) -> Value, outputHidden: Bool = false) -> Model {
        var rng = SeededRandom(6)
        let b = GraphBuilder()
        let x = b.input("x", .float, [2, 4, 16])
        let h = b.linear(x, "fc1", 16, 32, &rng)
        let mid = middle(b, h)
        let width = mid.type?.shape?.dims.last?.value ?? 32
        b.output(b.linear(mid, "fc2", width, 8, &rng))
        if outputHidden { b.output(mid) }
        return b.model(opset: 17)
    }

    @Test func layerNormOverTheChannelsBlocks() throws {
        var rng = SeededRandom(7)
        let m = Self.mlp { b, h in
            b.add(.layerNormalization, [h, b.floats("ln.scale", [32], &rng, scale: 1), b.floats("ln.bias", [32], &rng, scale: 1)],
                  attributes: [("axis", .int(-1))], name: "ln")
        }
        let a = PruningGroups.analyze(m)
        #expect(a.groups.isEmpty)
        let g = try #require(a.blocked.first { $0.name == "fc1/MatMul" })
        #expect(g.kind == .neurons && g.unitCount == 32)
        #expect(g.blockedReason == "'ln' (LayerNormalization) normalizes over the channels")
        #expect(throws: MaskError.self) { try Masks.set([Float](repeating: 1, count: 32), for: g, in: m) }

        // The same MLP with a ReLU there is prunable: 32 neurons of 16 + 1 + 8 parameters.
        let plain = PruningGroups.analyze(Self.mlp { b, h in b.add(.relu, [h]) })
        #expect(plain.groups.map(\.name) == ["fc1/MatMul"])
        #expect(plain.groups.first?.paramsPerUnit == Array(repeating: 16 + 1 + 8, count: 32))
    }

    @Test func layerNormOverSpatialAxesLetsChannelsThrough() throws {
        var rng = SeededRandom(8)
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 3, 8, 8])
        let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
        let ln = b.add(.layerNormalization, [c1, b.floats("ln.scale", [8, 8], &rng, scale: 1)], attributes: [("axis", .int(2))], name: "ln")
        b.output(b.conv(ln, "conv2", in: 8, out: 4, &rng))
        let a = PruningGroups.analyze(b.model())
        #expect(a.groups.map(\.name) == ["conv1"])
        #expect(a.groups.first?.slice("ln#1@0") == nil)  // the [H, W] scale is not per channel
    }

    @Test func aGraphOutputBlocks() throws {
        let m = Self.mlp({ b, h in b.add(.relu, [h], name: "relu") }, outputHidden: true)
        let a = PruningGroups.analyze(m)
        #expect(a.groups.isEmpty)
        let g = try #require(a.blocked.first { $0.name == "fc1/MatMul" })
        #expect(g.blockedReason == "it reaches the graph output 'relu_out'")
    }

    @Test func opsTheAnalysisDoesNotKnowBlock() throws {
        let topK = Self.mlp { b, h in
            b.node(OpType("TopK"), [h, b.int64s("k", [4])], attributes: [("axis", .int(-1))], outputs: 2, name: "topk")[0]
        }
        let a = PruningGroups.analyze(topK)
        #expect(a.groups.isEmpty)
        let g = try #require(a.blocked.first { $0.name == "fc1/MatMul" })
        #expect(g.blockedReason == "'topk' (TopK) is not understood by the group analysis")

        let custom = Self.mlp { b, h in
            let y = b.add(OpType("Scramble", domain: "com.example"), [h], name: "scramble")
            y.type = h.type
            return y
        }
        custom.opsetImports = custom.opsetImports + [OpsetImport(domain: "com.example", version: 1)]
        let c = PruningGroups.analyze(custom)
        #expect(c.groups.isEmpty)
        let cg = try #require(c.blocked.first { $0.name == "fc1/MatMul" })
        #expect(cg.blockedReason?.contains("is not understood by the group analysis") == true)
        #expect(cg.blockedReason?.contains("Scramble") == true)
    }

    static func input(_ shape: [Int]) -> NDArray {
        var rng = SeededRandom(99)
        return .random(shape, &rng)
    }
}

extension GroupSlice {
    /// `node#input@axis` for parameters, `value@axis` for activations.
    var key: String {
        switch target {
        case .parameter(let node, let input): return "\(node.name)#\(input)@\(axis)"
        case .activation(let v): return "\(v.name)@\(axis)"
        }
    }
}

extension PruningGroup {
    /// The slice with the given ``GroupSlice/key``.
    func slice(_ key: String) -> GroupSlice? { slices.first { $0.key == key } }
}
