import PruneIR
import PruneRuntime
import Testing

@testable import PruneKit

/// Mask folding, number by number: tensor slicing, the reshape axis map, a conv net whose folded
/// form is exactly as much smaller as the removed channels and computes what the masked one does,
/// gates of ones, masks that would empty a group, and a residual block gated off.
@Suite struct MaskFoldingTests {
    // MARK: Tensor.selecting

    @Test func selectingKeepsTheGivenIndicesInOrder() throws {
        let t = Tensor(floats: (0 ..< 24).map(Float.init), shape: [2, 3, 4])
        let a1 = try t.selecting([2, 0], along: 1)
        #expect(a1.shape == [2, 2, 4])
        #expect(try a1.floats() == [8, 9, 10, 11, 0, 1, 2, 3, 20, 21, 22, 23, 12, 13, 14, 15])
        let a2 = try t.selecting([3, 1], along: 2)
        #expect(a2.shape == [2, 3, 2])
        #expect(try a2.floats() == [3, 1, 7, 5, 11, 9, 15, 13, 19, 17, 23, 21])
        let a0 = try t.selecting([1], along: 0)
        #expect(a0.shape == [1, 3, 4])
        #expect(try a0.floats() == (12 ..< 24).map(Float.init))
        let none = try t.selecting([], along: 1)
        #expect(none.shape == [2, 0, 4] && none.elementCount == 0)

        let i = Tensor(int64s: [10, 11, 12, 13, 14, 15], shape: [3, 2])
        let i0 = try i.selecting([2, 1, 2], along: 0)
        #expect(i0.shape == [3, 2] && i0.dtype == .int64)
        #expect(try i0.int64s() == [14, 15, 12, 13, 14, 15])

        #expect(throws: IRError.self) { try t.selecting([3], along: 1) }
        #expect(throws: IRError.self) { try t.selecting([0], along: 3) }
    }

    // MARK: ReshapeAxisMap

    @Test func reshapeAxisMapFollowsSplitsMergesAndUnitAxes() {
        let b = Dim.symbol("batch"), s = Dim.symbol("seq")
        func k(_ v: Int) -> Dim { .known(v) }
        // Head split and merge, with symbolic batch and sequence.
        #expect(ReshapeAxisMap.map(from: [b, s, k(64)], to: [b, s, k(4), k(16)], axis: 2) == .split(2, factor: 16))
        #expect(ReshapeAxisMap.map(from: [b, s, k(4), k(16)], to: [b, s, k(64)], axis: 2) == .merge(2, factor: 16))
        // The inner axis of a merge cannot be followed (its indices interleave).
        #expect(ReshapeAxisMap.map(from: [b, s, k(4), k(16)], to: [b, s, k(64)], axis: 3) == nil)
        // Axes that only move past size-1 axes keep their size.
        #expect(ReshapeAxisMap.map(from: [k(2), k(8), k(1), k(1)], to: [k(2), k(8)], axis: 1) == .same(1))
        #expect(ReshapeAxisMap.map(from: [b, k(64)], to: [b, k(1), k(64)], axis: 1) == .same(2))
        #expect(ReshapeAxisMap.map(from: [b, k(1), k(64)], to: [b, k(64)], axis: 2) == .same(1))
        #expect(ReshapeAxisMap.map(from: [b, s, k(64)], to: [b, s, k(64)], axis: 0) == nil)  // a symbol has no size
        #expect(ReshapeAxisMap.map(from: [b, s, k(64)], to: [b, s, k(64)], axis: 2) == .same(2))
        // A size-1 axis in front of the split does not carry it.
        #expect(ReshapeAxisMap.map(from: [b, k(64)], to: [b, k(1), k(4), k(16)], axis: 1) == .split(2, factor: 16))
        // A known axis splits onto its outermost carrier: [6, 64] → [2, 3, 64].
        #expect(ReshapeAxisMap.map(from: [k(6), k(64)], to: [k(2), k(3), k(64)], axis: 0) == .split(0, factor: 3))
        // Sizes that do not line up: [b, 6, 4] → [b, 4, 6].
        #expect(ReshapeAxisMap.map(from: [b, k(6), k(4)], to: [b, k(4), k(6)], axis: 1) == nil)
        // Size-1 axes and axes out of range map to nothing.
        #expect(ReshapeAxisMap.map(from: [b, k(1), k(64)], to: [b, k(64)], axis: 1) == nil)
        // Unknown leading dims: matched from the back (a reshape keeps the element count, so equal
        // trailing products leave equal leading ones), as GPT-2's Conv1D writes view(-1, n).
        #expect(ReshapeAxisMap.map(from: [.unknown, k(64)], to: [.unknown, k(4), k(16)], axis: 1) == .split(1, factor: 16))
        #expect(ReshapeAxisMap.map(from: [b, s, k(4), k(16)], to: [.unknown, k(64)], axis: 2) == .merge(1, factor: 16))
        #expect(ReshapeAxisMap.map(from: [.unknown, k(64)], to: [.unknown, k(6), k(16)], axis: 1) == nil)
        #expect(ReshapeAxisMap.map(from: [b, k(64)], to: [b, k(64)], axis: 2) == nil)
    }

    // MARK: A conv net

    /// conv1(3→16) → BN → ReLU → conv2(16→32) → ReLU → conv3(32→8, 1×1) → GAP → Flatten → fc(8→10).
    static func convNet() -> Model {
        var rng = SeededRandom(11)
        let b = GraphBuilder(name: "convnet")
        let x = b.input("x", .float, [2, 3, 12, 12])
        let c1 = b.conv(x, "conv1", in: 3, out: 16, &rng)
        let scale = b.floats("bn1.scale", [16], &rng, scale: 1)
        let bias = b.floats("bn1.bias", [16], &rng, scale: 0.5)
        let mean = b.floats("bn1.mean", [16], &rng, scale: 0.2)
        let variance = b.initializer("bn1.var", Tensor(floats: rng.floats(16, scale: 0.4).map { $0 + 1 }, shape: [16]))
        let bn = b.add(.batchNormalization, [c1, scale, bias, mean, variance], attributes: [("epsilon", .float(1e-5))], name: "bn1")
        let c2 = b.conv(b.add(.relu, [bn]), "conv2", in: 16, out: 32, &rng)
        let c3 = b.conv(b.add(.relu, [c2]), "conv3", in: 32, out: 8, kernel: 1, &rng)
        let flat = b.add(.flatten, [b.add(.globalAveragePool, [c3])], attributes: [("axis", .int(1))])
        let fc = b.add(.gemm, [flat, b.floats("fc.weight", [10, 8], &rng, scale: 0.35), b.floats("fc.bias", [10], &rng, scale: 0.1)],
                       attributes: [("transB", .int(1))], name: "fc")
        b.output(fc)
        return b.model(opset: 17)
    }

    static func convInput() -> [String: NDArray] {
        var rng = SeededRandom(5)
        return ["x": .random([2, 3, 12, 12], &rng)]
    }

    @Test func maskingThirtyPercentOfChannelsFoldsToTheExactSmallerNet() throws {
        let original = Self.convNet()
        let masked = Self.convNet()
        let folded = Self.convNet()
        #expect(PruneCheck.floatParams(original) == 16 * 27 + 16 + 4 * 16 + 32 * 16 * 9 + 32 + 8 * 32 + 8 + 80 + 10)

        let analysis = PruningGroups.analyze(masked)
        #expect(analysis.groups.map(\.name) == ["conv1", "conv2", "conv3"])
        #expect(analysis.groups.map(\.kind) == [.channels, .channels, .channels])
        #expect(analysis.groups.map(\.unitCount) == [16, 32, 8])
        // A conv1 channel: its filter, bias, 4 BN values and one input slice of every conv2 filter.
        #expect(analysis.groups[0].paramsPerUnit == Array(repeating: 27 + 1 + 4 + 32 * 9, count: 16))
        #expect(analysis.groups[2].paramsPerUnit == Array(repeating: 32 + 1 + 10, count: 8))
        #expect(analysis.blocked.count == 1 && analysis.blocked[0].name == "fc")

        var rng = SeededRandom(3)
        let removed = analysis.groups.map { g in rng.choose(Int((0.3 * Double(g.unitCount)).rounded()), of: g.unitCount) }
        #expect(removed.map(\.count) == [5, 10, 2])
        let masks = zip(analysis.groups, removed).map { PruneCheck.keep($0.unitCount, removing: $1) }
        for (g, m) in zip(analysis.groups, masks) { try Masks.set(m, for: g, in: masked) }
        #expect(PruneCheck.gateCount(masked) == 3)

        let toFold = PruningGroups.analyze(folded).groups
        for (g, m) in zip(toFold, masks) { try Masks.set(m, for: g, in: folded) }
        let expected = try ExpectedCuts(groups: toFold, masks: masks)
        let summary = try MaskFolding.fold(folded)
        #expect(summary.groups == 3 && summary.unitsRemoved == [.channels: 17] && summary.gatesRemoved == 3)
        #expect(PruneCheck.gateCount(folded) == 0)
        #expect(!folded.graph.initializers.contains { Masks.isMask($0) })
        #expect(expected.cuts.count == 11)
        #expect(try expected.mismatches(in: folded) == [])

        let (k1, k2, k3) = (11, 22, 6)
        let foldedParams = k1 * 27 + k1 + 4 * k1 + k2 * k1 * 9 + k2 + k3 * k2 + k3 + 10 * k3 + 10
        #expect(foldedParams == 2760)
        #expect(PruneCheck.floatParams(folded) == foldedParams)
        #expect(PruneCheck.floatParams(original) - PruneCheck.floatParams(folded) == 2746)
        #expect(folded.graph.node(named: "conv2")?.inputs[1]?.constantValue?.shape == [22, 11, 3, 3])
        #expect(folded.graph.node(named: "bn1")?.inputs[4]?.constantValue?.shape == [11])
        #expect(folded.graph.node(named: "fc")?.inputs[1]?.constantValue?.shape == [10, 6])

        let diff = try PruneCheck.compare(masked, folded, Self.convInput())
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "masked vs folded: \(diff)")
        // The masks did change the function (a sanity check on the comparison).
        let change = try PruneCheck.compare(original, masked, Self.convInput())
        #expect(change.values.allSatisfy { $0 > 1e-3 }, "original vs masked: \(change)")
    }

    @Test func gatesOfOnesAreDeletedAndChangeNothing() throws {
        let original = Self.convNet()
        let m = Self.convNet()
        let groups = PruningGroups.analyze(m).groups
        for g in groups { try Masks.set([Float](repeating: 1, count: g.unitCount), for: g, in: m) }
        #expect(PruneCheck.gateCount(m) == 3)
        #expect(PruningGroups.analyze(m).groups.map { $0.maskValues?.allSatisfy { $0 == 1 } } == [true, true, true])
        let summary = try MaskFolding.fold(m)
        #expect(summary.groups == 0 && summary.unitsRemoved.isEmpty && summary.gatesRemoved == 3)
        #expect(PruneCheck.gateCount(m) == 0)
        #expect(m.graph.nodes.map(\.opType) == original.graph.nodes.map(\.opType))
        #expect(PruneCheck.floatParams(m) == PruneCheck.floatParams(original))
        let diff = try PruneCheck.compare(original, m, Self.convInput())
        #expect(diff.values.allSatisfy { $0 == 0 }, "\(diff)")
    }

    @Test func masksThatRemoveEveryUnitThrow() throws {
        let m = Self.convNet()
        let groups = PruningGroups.analyze(m).groups
        try Masks.set([Float](repeating: 0, count: groups[1].unitCount), for: groups[1], in: m)
        let error = #expect(throws: MaskFoldError.self) { try MaskFolding.fold(m) }
        guard case .emptied(let name, let kind)? = error else {
            Issue.record("expected .emptied, got \(String(describing: error))")
            return
        }
        #expect(name == "conv2" && kind == .channels)
        #expect(error?.description.contains("every channel") == true)
        // Setting a mask on a blocked group is refused before anything is inserted.
        let blocked = PruningGroups.analyze(Self.convNet()).blocked[0]
        #expect(throws: MaskError.self) { try Masks.set([Float](repeating: 0, count: blocked.unitCount), for: blocked, in: m) }
        #expect(throws: MaskError.self) { try Masks.set([1, 0], for: groups[0], in: m) }
    }

    /// conv(3→8) → Split [4, 4] → a · sigmoid(b) → conv(4→2): channel i and i + 4 are one unit.
    @Test func aGatedLinearUnitFoldsBothHalvesAndTheSplitSizes() throws {
        func glu() -> Model {
            var rng = SeededRandom(13)
            let b = GraphBuilder(name: "glu")
            let x = b.input("x", .float, [1, 3, 8, 8])
            let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
            let halves = b.node(.split, [c1, b.int64s("split.sizes", [4, 4])], attributes: [("axis", .int(1))], outputs: 2, name: "split")
            let gated = b.add(.mul, [halves[0], b.add(.sigmoid, [halves[1]])], name: "glu")
            b.output(b.conv(gated, "conv2", in: 4, out: 2, &rng))
            return b.model(opset: 17)
        }
        let masked = glu(), folded = glu()
        let g = try #require(PruningGroups.analyze(masked).groups.first)
        #expect(PruningGroups.analyze(masked).groups.count == 1 && g.unitCount == 4)
        let w1 = try #require(g.slice("conv1#1@0"))
        #expect(Array(w1.units[0 ..< 4]) == Array(w1.units[4 ..< 8]) && Set(w1.units).count == 4)
        #expect(g.paramsPerUnit == Array(repeating: 2 * (27 + 1) + 2 * 9, count: 4))
        let mask = PruneCheck.keep(4, removing: [w1.units[1]])
        try Masks.set(mask, for: g, in: masked)
        let toFold = try #require(PruningGroups.analyze(folded).groups.first)
        try Masks.set(mask, for: toFold, in: folded)
        let expected = try ExpectedCuts(groups: [toFold], masks: [mask])
        try MaskFolding.fold(folded)
        #expect(try expected.mismatches(in: folded) == [])
        #expect(folded.graph.node(named: "conv1")?.inputs[1]?.constantValue?.shape == [6, 3, 3, 3])
        #expect(try folded.graph.node(named: "split")?.inputs[1]?.constantValue?.int64s() == [3, 3])
        #expect(folded.graph.node(named: "conv2")?.inputs[1]?.constantValue?.shape == [2, 3, 3, 3])
        var rng = SeededRandom(14)
        let diff = try PruneCheck.compare(masked, folded, ["x": .random([1, 3, 8, 8], &rng)])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    /// conv(3→8) → Slice channels [2, 6) → ReLU → conv(4→2), plus a 1×1 conv(8→2) of all channels,
    /// added: removing channel 0 (outside the slice) and 3 (inside) leaves 6 channels sliced at [1, 4).
    @Test func aChannelSliceIsRewrittenToTheKeptChannels() throws {
        func net() -> Model {
            var rng = SeededRandom(15)
            let b = GraphBuilder(name: "slice")
            let x = b.input("x", .float, [1, 3, 8, 8])
            let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
            let sl = b.add(.slice, [c1, b.int64s("starts", [2]), b.int64s("ends", [6]), b.int64s("axes", [1])], name: "slice")
            let c2 = b.conv(b.add(.relu, [sl]), "conv2", in: 4, out: 2, &rng)
            b.output(b.add(.add, [c2, b.conv(c1, "conv3", in: 8, out: 2, kernel: 1, &rng)]))
            return b.model(opset: 17)
        }
        let masked = net(), folded = net()
        let g = try #require(PruningGroups.analyze(masked).groups.first)
        #expect(PruningGroups.analyze(masked).groups.count == 1 && g.unitCount == 8 && g.gateSites.count == 2)
        let w1 = try #require(g.slice("conv1#1@0")), w2 = try #require(g.slice("conv2#1@1"))
        #expect(w2.units == Array(w1.units[2 ..< 6]))
        let mask = PruneCheck.keep(8, removing: [w1.units[0], w1.units[3]])
        try Masks.set(mask, for: g, in: masked)
        try Masks.set(mask, for: try #require(PruningGroups.analyze(folded).groups.first), in: folded)
        try MaskFolding.fold(folded)
        #expect(folded.graph.node(named: "conv1")?.inputs[1]?.constantValue?.shape == [6, 3, 3, 3])
        #expect(folded.graph.node(named: "conv2")?.inputs[1]?.constantValue?.shape == [2, 3, 3, 3])
        #expect(folded.graph.node(named: "conv3")?.inputs[1]?.constantValue?.shape == [2, 6, 1, 1])
        let slice = try #require(folded.graph.node(named: "slice"))
        #expect(try slice.inputs[1]?.constantValue?.int64s() == [1] && slice.inputs[2]?.constantValue?.int64s() == [4])
        var rng = SeededRandom(16)
        let diff = try PruneCheck.compare(masked, folded, ["x": .random([1, 3, 8, 8], &rng)])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    /// conv(3→8) → Slice channels [2, 6) → ReLU → conv(4→2) and nothing else reads channels 0, 1,
    /// 6, 7: they are dead, so a gate on conv1's output holds their masks, and removing one of them
    /// (and a live one) folds to 6 channels with the same outputs.
    @Test func unitsNoLayerReadsAreGatedAtTheProducer() throws {
        func net() -> Model {
            var rng = SeededRandom(41)
            let b = GraphBuilder(name: "dead")
            let x = b.input("x", .float, [1, 3, 8, 8])
            let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
            let sl = b.add(.slice, [c1, b.int64s("starts", [2]), b.int64s("ends", [6]), b.int64s("axes", [1])], name: "slice")
            b.output(b.conv(b.add(.relu, [sl]), "conv2", in: 4, out: 2, &rng))
            return b.model(opset: 17)
        }
        let masked = net(), folded = net()
        let g = try #require(PruningGroups.analyze(masked).groups.first)
        #expect(g.unitCount == 8 && g.gateSites.count == 2)
        #expect(Set(g.gateSites.flatMap(\.units)).count == 8)
        let w1 = try #require(g.slice("conv1#1@0"))
        let mask = PruneCheck.keep(8, removing: [w1.units[0], w1.units[3]])
        try Masks.set(mask, for: g, in: masked)
        let h = try #require(PruningGroups.analyze(folded).groups.first)
        try Masks.set(mask, for: h, in: folded)
        #expect(PruningGroups.analyze(folded).groups.first?.maskValues == mask)
        try MaskFolding.fold(folded)
        #expect(folded.graph.node(named: "conv1")?.inputs[1]?.constantValue?.shape == [6, 3, 3, 3])
        #expect(folded.graph.node(named: "conv2")?.inputs[1]?.constantValue?.shape == [2, 3, 3, 3])
        #expect(PruneCheck.gateCount(folded) == 0)
        var rng = SeededRandom(42)
        let diff = try PruneCheck.compare(masked, folded, ["x": .random([1, 3, 8, 8], &rng)])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    /// conv(3→8) → ConvTranspose(8→6, stride 2) → ReLU → conv(6→2): the transposed weight is
    /// [in, out, k, k], so the first group cuts its axis 0 and the second its axis 1.
    @Test func aTransposedConvIsCutOnBothAxes() throws {
        func net() -> Model {
            var rng = SeededRandom(17)
            let b = GraphBuilder(name: "upsample")
            let x = b.input("x", .float, [1, 3, 5, 5])
            let c1 = b.conv(x, "conv1", in: 3, out: 8, &rng)
            let w = b.floats("up.weight", [8, 6, 2, 2], &rng, scale: 0.3), bias = b.floats("up.bias", [6], &rng, scale: 0.1)
            let up = b.add(.convTranspose, [c1, w, bias], attributes: [("strides", .ints([2, 2]))], name: "up")
            b.output(b.conv(b.add(.relu, [up]), "conv2", in: 6, out: 2, &rng))
            return b.model(opset: 17)
        }
        let masked = net(), folded = net()
        let groups = PruningGroups.analyze(masked).groups
        #expect(groups.map(\.name) == ["conv1", "up"] && groups.map(\.unitCount) == [8, 6])
        #expect(groups[0].slice("up#1@0") != nil && groups[1].slice("up#1@1") != nil && groups[1].slice("up#2@0") != nil)
        let masks = [PruneCheck.keep(8, removing: [1, 6]), PruneCheck.keep(6, removing: [4])]
        for (g, m) in zip(groups, masks) { try Masks.set(m, for: g, in: masked) }
        let toFold = PruningGroups.analyze(folded).groups
        for (g, m) in zip(toFold, masks) { try Masks.set(m, for: g, in: folded) }
        let expected = try ExpectedCuts(groups: toFold, masks: masks)
        try MaskFolding.fold(folded)
        #expect(try expected.mismatches(in: folded) == [])
        #expect(folded.graph.node(named: "up")?.inputs[1]?.constantValue?.shape == [6, 5, 2, 2])
        var rng = SeededRandom(18)
        let diff = try PruneCheck.compare(masked, folded, ["x": .random([1, 3, 5, 5], &rng)])
        #expect(diff.values.allSatisfy { $0 <= 1e-5 }, "\(diff)")
    }

    @Test func settingMasksAgainUpdatesTheGatesInPlace() throws {
        let m = Self.convNet()
        let first = PruneCheck.keep(16, removing: [0, 5]), second = PruneCheck.keep(16, removing: [3])
        try Masks.set(first, for: PruningGroups.analyze(m).groups[0], in: m)
        let again = PruningGroups.analyze(m).groups[0]
        #expect(again.maskValues == first && again.masks.count == 1)
        try Masks.set(second, for: again, in: m)
        #expect(PruneCheck.gateCount(m) == 1)
        #expect(PruningGroups.analyze(m).groups[0].maskValues == second)
        let summary = try MaskFolding.fold(m)
        #expect(summary.unitsRemoved == [.channels: 1])
        #expect(m.graph.node(named: "conv1")?.inputs[1]?.constantValue?.shape == [15, 3, 3, 3])
    }

    // MARK: Residual blocks

    /// `y = x + conv_b(relu(conv_a(x)))` on a graph input `x`.
    static func residualBlock() -> Model {
        var rng = SeededRandom(21)
        let b = GraphBuilder(name: "residual")
        let x = b.input("x", .float, [1, 8, 6, 6])
        let a = b.add(.relu, [b.conv(x, "conv_a", in: 8, out: 8, &rng)])
        let y = b.add(.add, [x, b.conv(a, "conv_b", in: 8, out: 8, &rng)], name: "residual_add")
        b.output(y)
        return b.model(opset: 17)
    }

    @Test func aResidualBlockGatedOffFoldsToIdentityOfItsInput() throws {
        var rng = SeededRandom(8)
        let input = NDArray.random([1, 8, 6, 6], &rng)
        let m = Self.residualBlock()
        let analysis = PruningGroups.analyze(m)
        #expect(analysis.blocks.count == 1)
        let block = try #require(analysis.blocks.first)
        #expect(block.name == "residual_add" && block.skipInput == 0)
        #expect(block.branch.map(\.name) == ["conv_a", "relu", "conv_b"])
        #expect(block.params == 2 * (8 * 8 * 9 + 8))
        try Masks.set(0, for: block, in: m)
        let masked = try PruneCheck.run(m, ["x": input])
        let y = m.graph.outputs[0].name
        #expect(masked[y]?.scalars(as: Float.self) == input.scalars(as: Float.self))

        let summary = try MaskFolding.fold(m)
        #expect(summary.blocksRemoved == 1)
        #expect(m.graph.nodes.map(\.opType) == [.identity])
        #expect(m.graph.nodes[0].inputs[0] === m.graph.inputs[0])
        #expect(m.graph.outputs[0].name == y)
        #expect(PruneCheck.floatParams(m) == 0)
        let folded = try PruneCheck.run(m, ["x": input])
        #expect(folded[y]?.shape == [1, 8, 6, 6])
        #expect(folded[y]?.scalars(as: Float.self) == input.scalars(as: Float.self))
    }

    @Test func aResidualBlockGatedOnLosesOnlyItsGate() throws {
        var rng = SeededRandom(9)
        let input = ["x": NDArray.random([1, 8, 6, 6], &rng)]
        let original = Self.residualBlock()
        let m = Self.residualBlock()
        let block = try #require(PruningGroups.analyze(m).blocks.first)
        try Masks.set(1, for: block, in: m)
        #expect(m.graph.nodes.count == original.graph.nodes.count + 1)
        let summary = try MaskFolding.fold(m)
        #expect(summary.blocksRemoved == 0)
        #expect(m.graph.nodes.map(\.opType) == original.graph.nodes.map(\.opType))
        let diff = try PruneCheck.compare(original, m, input)
        #expect(diff.values.allSatisfy { $0 == 0 }, "\(diff)")
    }
}

/// What folding must do to each weight a group slices: the original tensor with the kept indices
/// selected on each axis a masked group cuts, read after folding from the same node and input.
struct ExpectedCuts {
    struct Key: Hashable, CustomStringConvertible {
        let node: String
        let input: Int
        var description: String { "\(node)#\(input)" }
    }

    var cuts: [Key: (original: Tensor, axes: [Int: [Int]])] = [:]

    /// `masks[i]` (one value per unit, 0 removes) for `groups[i]`; call before folding.
    init(groups: [PruningGroup], masks: [[Float]]) throws {
        for (g, m) in zip(groups, masks) {
            for sl in g.parameters {
                guard case .parameter(let node, let input) = sl.target, let t = sl.value.constantValue else { continue }
                let kept = sl.units.indices.filter { m[sl.units[$0]] != 0 }
                let key = Key(node: node.name, input: input)
                cuts[key, default: (t, [:])].axes[sl.axis] = kept
            }
        }
    }

    /// Shapes of the expected tensors, by node and input.
    func expectedShape(_ node: String, input: Int) throws -> [Int]? {
        guard let c = cuts[Key(node: node, input: input)] else { return nil }
        var shape = c.original.shape
        for (axis, kept) in c.axes { shape[axis] = kept.count }
        return shape
    }

    /// Descriptions of the parameters of `folded` that differ from the expectation (empty when all match).
    func mismatches(in folded: Model) throws -> [String] {
        var out: [String] = []
        for (key, c) in cuts.sorted(by: { $0.key.description < $1.key.description }) {
            var t = c.original
            for axis in c.axes.keys.sorted() { t = try t.selecting(c.axes[axis]!, along: axis) }
            guard let node = folded.graph.node(named: key.node), key.input < node.inputs.count,
                let actual = node.inputs[key.input]?.constantValue
            else {
                out.append("\(key): missing")
                continue
            }
            if actual.shape != t.shape {
                out.append("\(key): shape \(actual.shape), expected \(t.shape)")
            } else if try actual.floats() != t.floats() {
                out.append("\(key): values differ")
            }
        }
        return out
    }
}
