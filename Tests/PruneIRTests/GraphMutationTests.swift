import Foundation
import ONNXProto
import Testing

@testable import PruneIR

/// Use lists, the graph mutation API, constants and subgraph uses.
@Suite struct GraphMutationTests {
    /// `x, w -> MatMul 'mm' -> Relu 'relu' -> Add 'sum'(relu, x) -> output`.
    private struct Chain {
        let builder: GraphBuilder
        let x: Value
        let w: Value
        let mmOut: Value
        let reluOut: Value
        let sumOut: Value
        var graph: Graph { builder.graph }
        var mm: Node { mmOut.producer! }
        var relu: Node { reluOut.producer! }
        var sum: Node { sumOut.producer! }
    }

    private static func chain() -> Chain {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [2, 4])
        let w = b.initializer("w", Tensor(floats: (0 ..< 8).map { Float($0) }, shape: [4, 2]))
        let mm = b.add(.matMul, [x, w], name: "mm")
        let r = b.add(.relu, [mm], name: "relu")
        let s = b.add(.add, [r, mm], name: "sum")
        b.output(s)
        return Chain(builder: b, x: x, w: w, mmOut: mm, reluOut: r, sumOut: s)
    }

    /// The uses of a value as `(node name, input index)` pairs, for comparisons.
    private static func useKeys(_ v: Value) -> [String] {
        v.uses.map { "\($0.node.name):\($0.inputIndex)" }
    }

    // MARK: - Use lists

    @Test func builderRecordsProducersAndUses() throws {
        let c = Self.chain()
        #expect(c.graph.nodes.map(\.name) == ["mm", "relu", "sum"])
        #expect(c.graph.nodes.map(\.opType) == [.matMul, .relu, .add])
        #expect(c.mmOut.name == "mm_out")
        #expect(c.mmOut.producer === c.graph.nodes[0])
        #expect(c.mmOut.outputIndex == 0)
        #expect(c.x.producer == nil)
        #expect(c.x.owningGraph === c.graph)
        #expect(c.w.producer == nil)
        #expect(c.w.owningGraph === c.graph)
        #expect(c.w.initializer?.name == "w")
        #expect(c.w.type == .tensor(.float, [4, 2]))

        #expect(Self.useKeys(c.x) == ["mm:0"])
        #expect(Self.useKeys(c.w) == ["mm:1"])
        #expect(Self.useKeys(c.mmOut) == ["relu:0", "sum:1"])
        #expect(Self.useKeys(c.reluOut) == ["sum:0"])
        #expect(c.sumOut.uses.isEmpty)
        #expect(!c.sumOut.hasUses)
        #expect(c.mmOut.uses[0].node === c.relu)
        #expect(c.mmOut.uses[1].node === c.sum)
        for n in c.graph.nodes { #expect(n.graph === c.graph) }
        #expect(c.graph.outputs.count == 1 && c.graph.outputs[0] === c.sumOut)
    }

    @Test func multiOutputNodeAndRepeatedInput() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [4])
        let outs = b.node(.split, [x], attributes: [("axis", .int(0))], outputs: 2, name: "split")
        let sq = b.add(.mul, [outs[1], outs[1]], name: "sq")
        b.output(outs[0], sq)

        #expect(outs.map(\.name) == ["split_out0", "split_out1"])
        #expect(outs.map(\.outputIndex) == [0, 1])
        #expect(outs[0].producer === outs[1].producer)
        #expect(Self.useKeys(outs[1]) == ["sq:0", "sq:1"])
        #expect(outs[0].uses.isEmpty)

        // Rewiring one slot leaves the other use of the same value in place.
        sq.producer!.setInput(x, at: 0)
        #expect(Self.useKeys(outs[1]) == ["sq:1"])
        #expect(Self.useKeys(x) == ["split:0", "sq:0"])
        #expect(Verifier().findings(b.graph).isEmpty)
    }

    @Test func builderNamesAreUnique() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [1])
        let a = b.add(.relu, [x])
        let c = b.add(.relu, [a])
        let d = b.add(.relu, [c], name: "relu")
        #expect(a.producer!.name == "relu")
        #expect(c.producer!.name == "relu_1")
        #expect(d.producer!.name == "relu_2")
        #expect([a.name, c.name, d.name] == ["relu_out", "relu_1_out", "relu_2_out"])
        #expect(b.uniqueName("x") == "x_3")
    }

    @Test func setInputMovesAUse() throws {
        let c = Self.chain()
        c.relu.setInput(c.x, at: 0)
        #expect(c.relu.inputs[0] === c.x)
        #expect(Self.useKeys(c.mmOut) == ["sum:1"])
        #expect(Self.useKeys(c.x) == ["mm:0", "relu:0"])

        // Setting an input to nil (omitting it) drops the use.
        c.sum.setInput(nil, at: 1)
        #expect(c.sum.inputs[1] == nil)
        #expect(c.mmOut.uses.isEmpty)
        #expect(Verifier().findings(c.graph).isEmpty)
    }

    @Test func appendAndTruncateInputsKeepUses() throws {
        let c = Self.chain()
        c.sum.appendInput(c.x)
        #expect(c.sum.inputs.count == 3)
        #expect(Self.useKeys(c.x) == ["mm:0", "sum:2"])
        c.sum.truncateInputs(to: 1)
        #expect(c.sum.inputs.count == 1)
        #expect(Self.useKeys(c.x) == ["mm:0"])
        #expect(Self.useKeys(c.mmOut) == ["relu:0"])
        #expect(Self.useKeys(c.reluOut) == ["sum:0"])
    }

    @Test func replaceAllUsesLeavesGraphOutputsAlone() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [2])
        let y = b.input("y", .float, [2])
        let r = b.add(.relu, [x], name: "relu")
        let n1 = b.add(.neg, [r], name: "n1")
        let n2 = b.add(.add, [r, r], name: "n2")
        b.output(r, n1, n2)

        r.replaceAllUses(with: y)
        #expect(r.uses.isEmpty)
        #expect(Self.useKeys(y) == ["n1:0", "n2:0", "n2:1"])
        #expect(n1.producer!.inputs[0] === y)
        #expect(b.graph.outputs[0] === r, "graph outputs must stay unless asked")
        #expect(Verifier().findings(b.graph).isEmpty)

        let z = b.add(.identity, [x], name: "z")
        r.replaceAllUses(with: z, includingGraphOutputs: true)
        #expect(b.graph.outputs[0] === z)
        #expect(b.graph.outputs[1] === n1)
        #expect(b.graph.outputs[2] === n2)
    }

    @Test func replaceAllUsesOfAGraphInputIncludingOutputs() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [2])
        let y = b.input("y", .float, [2])
        let r = b.add(.relu, [x], name: "relu")
        b.output(x, r)
        x.replaceAllUses(with: y, includingGraphOutputs: true)
        #expect(b.graph.outputs[0] === y, "an input's graph outputs are found through its owning graph")
        #expect(b.graph.outputs[1] === r)
        #expect(r.producer!.inputs[0] === y)
        #expect(x.uses.isEmpty)
        #expect(Self.useKeys(y) == ["relu:0"])
        #expect(b.graph.inputs.count == 2, "graph inputs are never rewritten")
    }

    @Test func usesIsASnapshotSafeToIterateWhileRewriting() throws {
        let c = Self.chain()
        let snapshot = c.mmOut.uses
        #expect(snapshot.count == 2)
        var visited: [String] = []
        for use in c.mmOut.uses {
            visited.append(use.node.name)
            use.node.setInput(c.x, at: use.inputIndex)
        }
        #expect(visited == ["relu", "sum"])
        #expect(snapshot.count == 2, "a snapshot taken before the rewrite does not change")
        #expect(c.mmOut.uses.isEmpty)
        #expect(Self.useKeys(c.x) == ["mm:0", "relu:0", "sum:1"])
        #expect(Verifier().findings(c.graph).isEmpty)
    }

    // MARK: - Removing nodes

    @Test func removeRefusesANodeWhoseOutputIsUsedAndChangesNothing() throws {
        let c = Self.chain()
        let before = c.graph.nodes
        let xUses = Self.useKeys(c.x)
        let wUses = Self.useKeys(c.w)
        #expect(throws: IRError.valueInUse("mm_out", uses: ["'relu' (Relu)", "'sum' (Add)"])) {
            try c.graph.remove(c.mm)
        }
        #expect(c.graph.nodes.count == 3)
        #expect(zip(before, c.graph.nodes).allSatisfy { $0 === $1 })
        #expect(Self.useKeys(c.x) == xUses)
        #expect(Self.useKeys(c.w) == wUses)
        #expect(c.mm.inputs[0] === c.x && c.mm.inputs[1] === c.w)
        #expect(c.mm.graph === c.graph)
        #expect(Verifier().findings(c.graph).isEmpty)
    }

    @Test func removeRefusesAGraphOutputProducer() throws {
        let c = Self.chain()
        let reluUses = Self.useKeys(c.reluOut)
        let mmUses = Self.useKeys(c.mmOut)
        #expect(throws: IRError.valueInUse("sum_out", uses: ["graph output"])) {
            try c.graph.remove(c.sum)
        }
        #expect(c.graph.nodes.map(\.name) == ["mm", "relu", "sum"])
        #expect(Self.useKeys(c.reluOut) == reluUses)
        #expect(Self.useKeys(c.mmOut) == mmUses)
        #expect(c.sum.graph === c.graph)
    }

    @Test func removeChecksEveryOutputBeforeMutating() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [4])
        let outs = b.node(.split, [x], outputs: 2, name: "split")
        let r = b.add(.relu, [outs[1]], name: "relu")
        b.output(r)
        // The first output is dead, the second is read: nothing may change.
        #expect(throws: IRError.valueInUse("split_out1", uses: ["'relu' (Relu)"])) {
            try b.graph.remove(outs[0].producer!)
        }
        #expect(b.graph.nodes.count == 2)
        #expect(Self.useKeys(x) == ["split:0"])
        #expect(outs[0].producer!.inputs[0] === x)
    }

    @Test func removeDeadNodeDropsUsesOfItsInputs() throws {
        let c = Self.chain()
        // Make relu dead: sum reads mm_out in both slots.
        c.reluOut.replaceAllUses(with: c.mmOut)
        let relu = c.relu
        #expect(c.reluOut.uses.isEmpty)
        #expect(Self.useKeys(c.mmOut) == ["relu:0", "sum:1", "sum:0"])

        try c.graph.remove(relu)
        #expect(c.graph.nodes.map(\.name) == ["mm", "sum"])
        #expect(Self.useKeys(c.mmOut) == ["sum:1", "sum:0"])
        #expect(relu.graph == nil)
        #expect(relu.inputs.allSatisfy { $0 == nil })
        #expect(c.graph.node(named: "relu") == nil)
        #expect(c.graph.value(named: "relu_out") == nil)
        #expect(Verifier().findings(c.graph).isEmpty)

        // Removing it again: it is no longer in the graph.
        #expect(throws: IRError.notInGraph("'relu' (Relu)")) { try c.graph.remove(relu) }
    }

    // MARK: - Inserting nodes

    @Test func insertBeforeAndAfterOrdering() throws {
        let c = Self.chain()
        let a = Node(.identity, name: "a", inputs: [c.x], outputs: ["a_out"])
        let z = Node(.identity, name: "z", inputs: [c.sumOut], outputs: ["z_out"])
        let m = Node(.identity, name: "m", inputs: [c.mmOut], outputs: ["m_out"])
        try c.graph.insert(a, before: c.mm)
        try c.graph.insert(z, after: c.sum)
        try c.graph.insert(m, after: c.mm)
        #expect(c.graph.nodes.map(\.name) == ["a", "mm", "m", "relu", "sum", "z"])
        #expect(a.graph === c.graph && z.graph === c.graph && m.graph === c.graph)
        #expect(Self.useKeys(c.x) == ["mm:0", "a:0"])
        #expect(Self.useKeys(c.mmOut) == ["relu:0", "sum:1", "m:0"])
        #expect(Verifier().findings(c.graph).isEmpty)

        let stranger = Node(.relu, name: "stranger", inputs: [c.x], outputs: ["s_out"])
        let other = Node(.relu, name: "other", inputs: [], outputs: ["o_out"])
        #expect(throws: IRError.notInGraph("'stranger' (Relu)")) { try c.graph.insert(other, before: stranger) }
        #expect(throws: IRError.notInGraph("'stranger' (Relu)")) { try c.graph.insert(other, after: stranger) }
        #expect(c.graph.nodes.count == 6)
        #expect(other.graph == nil)
    }

    // MARK: - Inputs and initializers

    @Test func removeInitializerRefusesAUsedInitializer() throws {
        let c = Self.chain()
        #expect(throws: IRError.valueInUse("w", uses: ["'mm' (MatMul)"])) {
            try c.graph.removeInitializer(c.w)
        }
        #expect(c.graph.initializers.count == 1 && c.graph.initializers[0] === c.w)
        #expect(c.w.initializer != nil)

        let zeros = c.graph.addInitializer(Tensor(floats: Array(repeating: 0, count: 8), shape: [4, 2]), name: "zeros")
        c.mm.setInput(zeros, at: 1)
        try c.graph.removeInitializer(c.w)
        #expect(c.graph.initializers.count == 1 && c.graph.initializers[0] === zeros)
        #expect(c.w.initializer == nil)
        #expect(c.graph.value(named: "w") == nil)
        #expect(Verifier().findings(c.graph).isEmpty)
    }

    @Test func removeInputRefusesAUsedInput() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [1])
        let unused = b.input("unused", .float, [1])
        b.output(b.add(.relu, [x], name: "relu"))
        #expect(throws: IRError.valueInUse("x", uses: ["'relu' (Relu)"])) { try b.graph.removeInput(x) }
        #expect(b.graph.inputs.count == 2)
        try b.graph.removeInput(unused)
        #expect(b.graph.inputs.count == 1 && b.graph.inputs[0] === x)
    }

    @Test func setInitializerReplacesDataAndType() throws {
        let c = Self.chain()
        let smaller = Tensor(floats: [1, 2, 3, 4], shape: [4, 1])
        c.graph.setInitializer(c.w, to: smaller)
        #expect(c.w.initializer?.shape == [4, 1])
        #expect(c.w.initializer?.name == "w", "the tensor takes the value's name")
        #expect(try c.w.initializer?.floats() == [1, 2, 3, 4])
        #expect(c.w.type == .tensor(.float, [4, 1]))
        #expect(c.w.typeChanged)
        #expect(c.graph.initializers.count == 1)
    }

    // MARK: - Constants

    @Test func constantValueOfInitializer() throws {
        let c = Self.chain()
        let t = try #require(c.w.constantValue)
        #expect(t.name == "w")
        #expect(t.shape == [4, 2])
        #expect(try t.floats() == (0 ..< 8).map { Float($0) })
        #expect(c.x.constantValue == nil)
        #expect(c.mmOut.constantValue == nil)
    }

    @Test func constantValueOfEachConstantNodeForm() throws {
        let b = GraphBuilder(name: "g")
        let tensor = Tensor(int32s: [7, -8, 9], shape: [3])
        let viaTensor = b.add(.constant, [], attributes: [("value", .tensor(tensor))], name: "c_tensor")
        let viaFloat = b.add(.constant, [], attributes: [("value_float", .float(2.5))], name: "c_float")
        let viaFloats = b.add(.constant, [], attributes: [("value_floats", .floats([1, -1, 0.25]))], name: "c_floats")
        let viaInt = b.add(.constant, [], attributes: [("value_int", .int(-42))], name: "c_int")
        let viaInts = b.add(.constant, [], attributes: [("value_ints", .ints([3, 4, 5, 6]))], name: "c_ints")
        let notConstant = b.add(.identity, [viaInt], name: "id")
        b.output(viaTensor, viaFloat, viaFloats, viaInts, notConstant)

        let t = try #require(viaTensor.constantValue)
        #expect(t == tensor)
        #expect(t.dtype == .int32)
        #expect(try t.int64s() == [7, -8, 9])

        let f = try #require(viaFloat.constantValue)
        #expect(f.dtype == .float && f.shape == [] && f.elementCount == 1)
        #expect(try f.floats() == [2.5])

        let fs = try #require(viaFloats.constantValue)
        #expect(fs.dtype == .float && fs.shape == [3])
        #expect(try fs.floats() == [1, -1, 0.25])

        let i = try #require(viaInt.constantValue)
        #expect(i.dtype == .int64 && i.shape == [])
        #expect(try i.int64s() == [-42])

        let ints = try #require(viaInts.constantValue)
        #expect(ints.dtype == .int64 && ints.shape == [4])
        #expect(try ints.int64s() == [3, 4, 5, 6])

        #expect(notConstant.constantValue == nil)

        // The same forms survive export and import.
        let reloaded = try ModelImporter.load(
            serialized: try ModelExporter.serialize(b.model()), file: "constants.onnx", baseDirectory: nil)
        let g = reloaded.graph
        #expect(try g.value(named: viaTensor.name)?.constantValue?.int64s() == [7, -8, 9])
        #expect(try g.value(named: viaFloat.name)?.constantValue?.floats() == [2.5])
        #expect(try g.value(named: viaFloats.name)?.constantValue?.floats() == [1, -1, 0.25])
        #expect(try g.value(named: viaInt.name)?.constantValue?.int64s() == [-42])
        #expect(try g.value(named: viaInts.name)?.constantValue?.int64s() == [3, 4, 5, 6])
    }

    // MARK: - Subgraphs

    /// `If(cond)` whose branches read the outer value `x` (and `y` in the else branch).
    private static func ifModel() -> (GraphBuilder, x: Value, ifNode: Node, thenGraph: Graph, elseGraph: Graph) {
        let b = GraphBuilder(name: "main")
        let cond = b.input("cond", .bool, [])
        let x = b.input("x", .float, [2])
        let y = b.add(.relu, [x], name: "outer_relu")

        let tb = GraphBuilder(name: "then")
        let t = tb.add(.neg, [x], name: "then_neg")
        tb.output(t)
        let eb = GraphBuilder(name: "else")
        let e = eb.add(.add, [x, y], name: "else_add")
        eb.output(e)

        let out = b.node(
            .if, [cond], attributes: [("then_branch", .graph(tb.graph)), ("else_branch", .graph(eb.graph))], name: "if")
        b.output(out[0])
        return (b, x, out[0].producer!, tb.graph, eb.graph)
    }

    @Test func subgraphReadsAreUsesOfTheOuterValue() throws {
        let (b, x, ifNode, thenGraph, elseGraph) = Self.ifModel()
        #expect(Self.useKeys(x) == ["outer_relu:0", "then_neg:0", "else_add:0"])
        #expect(x.uses[1].node.graph === thenGraph)
        #expect(x.uses[2].node.graph === elseGraph)
        #expect(ifNode.subgraphs.count == 2)
        #expect(b.graph.allNodes.map(\.name) == ["outer_relu", "if", "then_neg", "else_add"])
        #expect(Verifier().findings(b.graph).isEmpty)
        try Verifier().verify(b.model())

        // The outer value cannot be replaced away silently: replaceAllUses reaches inner readers.
        let y = b.graph.value(named: "outer_relu_out")!
        #expect(Self.useKeys(y) == ["else_add:1"])
        x.replaceAllUses(with: y)
        #expect(Self.useKeys(y) == ["else_add:1", "outer_relu:0", "then_neg:0", "else_add:0"])
        #expect(thenGraph.nodes[0].inputs[0] === y)
    }

    @Test func subgraphParentNodeIsSetByBuilder() throws {
        let (b, _, ifNode, thenGraph, elseGraph) = Self.ifModel()
        // Compared outside #expect so a failure does not reflect the whole graph.
        let thenParentIsIf = thenGraph.parentNode === ifNode
        let elseParentIsIf = elseGraph.parentNode === ifNode
        #expect(thenParentIsIf)
        #expect(elseParentIsIf)
        // setAttribute does set it.
        let g = Graph(name: "replacement")
        ifNode.setAttribute("then_branch", .graph(g))
        let replacementParentIsIf = g.parentNode === ifNode
        #expect(replacementParentIsIf)
        withExtendedLifetime(b) {}
    }

    /// A node built with inputs but never inserted records uses on its inputs. `Use.node` is
    /// `unowned`, so once the node is gone those entries dangle: counting is still safe, but
    /// reading `use.node` traps.
    @Test func abandonedNodeLeavesNoUse() throws {
        let c = Self.chain()
        func buildAndDrop(_ v: Value) {
            let candidate = Node(.relu, name: "candidate", inputs: [v], outputs: ["candidate_out"])
            #expect(candidate.inputs.count == 1)
        }
        buildAndDrop(c.x)
        let useCount = c.x.uses.count
        let hasUses = c.mmOut.hasUses
        #expect(hasUses)
        #expect(useCount == 1, "only mm reads x; the dropped candidate must not stay listed")
    }

    @Test func subgraphParentNodeIsSetByImporter() throws {
        let (b, _, _, _, _) = Self.ifModel()
        let m = try ModelImporter.load(serialized: ModelExporter.serialize(b.model()), file: "if.onnx", baseDirectory: nil)
        let ifNode = try #require(m.graph.node(named: "if"))
        #expect(ifNode.subgraphs.count == 2)
        for g in ifNode.subgraphs { #expect(g.parentNode === ifNode) }
    }

    @Test func subgraphImportRecordsOuterUsesAndVerifies() throws {
        let (b, _, _, _, _) = Self.ifModel()
        let bytes = try ModelExporter.serialize(b.model())
        let m = try ModelImporter.load(serialized: bytes, file: "if.onnx", baseDirectory: nil)
        try Verifier().verify(m)
        let x = try #require(m.graph.value(named: "x"))
        #expect(Self.useKeys(x) == ["outer_relu:0", "then_neg:0", "else_add:0"])
        let ifNode = try #require(m.graph.node(named: "if"))
        let thenBranch = try #require(try ifNode.attribute("then_branch", as: Graph.self))
        #expect(thenBranch.name == "then")
        #expect(thenBranch.nodes[0].inputs[0] === x)
        #expect(try ModelExporter.serialize(m) == bytes)
    }

    @Test func verifierRejectsSubgraphReadingAValueDefinedAfterTheIf() throws {
        let b = GraphBuilder(name: "main")
        let cond = b.input("cond", .bool, [])
        let x = b.input("x", .float, [2])
        let tb = GraphBuilder(name: "then")
        let late = Value(name: "late")
        let t = tb.add(.neg, [late], name: "then_neg")
        tb.output(t)
        let eb = GraphBuilder(name: "else")
        eb.output(eb.add(.identity, [x], name: "else_id"))
        let out = b.node(.if, [cond], attributes: [("then_branch", .graph(tb.graph)), ("else_branch", .graph(eb.graph))], name: "if")
        let lateNode = Node(.relu, name: "late_relu", inputs: [x], outputs: [])
        lateNode.addOutput(late)
        b.graph.append(lateNode)
        b.output(out[0], late)

        let findings = Verifier().findings(b.graph)
        #expect(findings == ["graph 'then': node 'then_neg' (Neg) reads 'late' before it is defined"])
    }

    // MARK: - Rewrite, export, re-import

    @Test func rewrittenBuiltModelExportsReimportsAndVerifies() throws {
        let c = Self.chain()
        // Drop the Relu: sum reads mm_out twice.
        c.reluOut.replaceAllUses(with: c.mmOut)
        try c.graph.remove(c.relu)
        // Add a bias after the sum and make it the new output.
        let bias = c.graph.addInitializer(Tensor(floats: [0.5, -0.5], shape: [2]), name: "bias")
        let biased = Node(.add, name: "biased", inputs: [nil, bias], outputs: ["y"])
        try c.graph.insert(biased, after: c.sum)
        // Move the graph output first, then wire the new node (it must not read its own output).
        c.sumOut.replaceAllUses(with: biased.outputs[0], includingGraphOutputs: true)
        biased.setInput(c.sumOut, at: 0)
        #expect(c.graph.outputs[0] === biased.outputs[0])
        try Verifier().verify(c.builder.model())

        let bytes = try ModelExporter.serialize(c.builder.model())
        let m = try ModelImporter.load(serialized: bytes, file: "rewritten.onnx", baseDirectory: nil)
        try Verifier().verify(m)
        #expect(m.graph.nodes.map(\.name) == ["mm", "sum", "biased"])
        #expect(m.graph.nodes.map(\.opType) == [.matMul, .add, .add])
        #expect(m.graph.nodes[1].inputs.map { $0?.name } == ["mm_out", "mm_out"])
        #expect(m.graph.nodes[2].inputs.map { $0?.name } == ["sum_out", "bias"])
        #expect(m.graph.outputs.map(\.name) == ["y"])
        #expect(m.graph.initializers.map(\.name) == ["w", "bias"])
        #expect(try m.graph.value(named: "bias")?.initializer?.floats() == [0.5, -0.5])
        let mmOut = try #require(m.graph.value(named: "mm_out"))
        #expect(Self.useKeys(mmOut) == ["sum:0", "sum:1"])
    }

    @Test func rewrittenImportedModelExportsReimportsAndVerifies() throws {
        let c = Self.chain()
        let m = try ModelImporter.load(
            serialized: ModelExporter.serialize(c.builder.model()), file: "chain.onnx", baseDirectory: nil)
        let g = m.graph
        let relu = try #require(g.node(named: "relu"))
        let mmOut = try #require(g.value(named: "mm_out"))
        let reluOut = try #require(g.value(named: "relu_out"))
        reluOut.replaceAllUses(with: mmOut)
        try g.remove(relu)
        let w = try #require(g.value(named: "w"))
        g.setInitializer(w, to: Tensor(floats: [1, 1, 1, 1, 1, 1, 1, 1], shape: [4, 2]))
        try Verifier().verify(m)

        let again = try ModelImporter.load(serialized: ModelExporter.serialize(m), file: "chain2.onnx", baseDirectory: nil)
        try Verifier().verify(again)
        #expect(again.graph.nodes.map(\.name) == ["mm", "sum"])
        #expect(again.graph.nodes[1].inputs.map { $0?.name } == ["mm_out", "mm_out"])
        #expect(try again.graph.value(named: "w")?.initializer?.floats() == Array(repeating: 1, count: 8))
        #expect(again.graph.value(named: "relu_out") == nil)
    }
}

extension OpType {
    fileprivate static let neg = OpType("Neg")
}
