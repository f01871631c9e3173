import Foundation
import ONNXProto
import PruneTestSupport
import Testing

@testable import PruneIR

/// The IR verifier: what it accepts, what it reports (naming the value or node), and the `Checks`
/// option set.
@Suite struct VerifierTests {
    /// `x, w -> MatMul 'mm' -> Relu 'relu' -> output`, in graph "g".
    private static func chain() -> (GraphBuilder, x: Value, w: Value, mm: Node, relu: Node) {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [2, 4])
        let w = b.initializer("w", Tensor(floats: Array(repeating: 1, count: 8), shape: [4, 2]))
        let mm = b.add(.matMul, [x, w], name: "mm")
        let r = b.add(.relu, [mm], name: "relu")
        b.output(r)
        return (b, x, w, mm.producer!, r.producer!)
    }

    /// The findings `verify(model)` throws, or `[]` when it passes.
    private static func thrownFindings(_ model: Model, checks: Verifier.Checks = .all) -> [String] {
        do {
            try Verifier(checks: checks).verify(model)
            return []
        } catch IRError.verificationFailed(let findings) {
            return findings
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    // MARK: - Accepted graphs

    @Test func acceptsBuiltGraphs() throws {
        let (b, _, _, _, _) = Self.chain()
        #expect(Verifier().findings(b.graph).isEmpty)
        #expect(Verifier(checks: .all).findings(b.graph).isEmpty)
        try Verifier().verify(b.model())

        // Omitted optional inputs and outputs, multiple outputs, constants.
        let b2 = GraphBuilder(name: "g2")
        let x = b2.input("x", .float, [1, 3, 4, 4])
        let scale = b2.initializer("scale", Tensor(floats: [1, 1, 1], shape: [3]))
        let bias = b2.initializer("bias", Tensor(floats: [0, 0, 0], shape: [3]))
        let stats = b2.initializer("stats", Tensor(floats: [0, 0, 0], shape: [3]))
        let bn = b2.node(.batchNormalization, [x, scale, bias, stats, stats], outputs: 1, name: "bn")
        let shape = b2.add(.constant, [], attributes: [("value_ints", .ints([1, 48]))], name: "shape")
        let reshaped = b2.add(.reshape, [bn[0], shape], name: "reshape")
        let clip = b2.add(OpType("Clip"), [reshaped, nil, nil], name: "clip")
        let split = b2.node(.split, [clip], attributes: [("axis", .int(1))], outputs: 2, name: "split")
        b2.output(split[0], split[1])
        #expect(Verifier().findings(b2.graph).isEmpty)
    }

    @Test func acceptsImportedExampleModel() throws {
        guard let url = TestPaths.exampleModels.first(where: { $0.lastPathComponent == "resnet.onnx" }) else {
            Issue.record("examples/models/resnet.onnx is missing")
            return
        }
        let model = try ModelImporter.load(contentsOf: url)
        #expect(Verifier().findings(model.graph).isEmpty)
    }

    // MARK: - Findings

    @Test func reportsANodeReadingAValueDefinedLater() throws {
        let (b, _, _, mm, relu) = Self.chain()
        let early = Node(.identity, name: "early", inputs: [relu.outputs[0]], outputs: ["early_out"])
        try b.graph.insert(early, before: mm)
        let expected = "graph 'g': node 'early' (Identity) reads 'relu_out' before it is defined"
        #expect(Verifier().findings(b.graph) == [expected])
        #expect(Self.thrownFindings(b.model()) == [expected])
        #expect(throws: IRError.verificationFailed([expected])) { try Verifier().verify(b.model()) }
        #expect(IRError.verificationFailed([expected]).description == "invalid graph: \(expected)")
    }

    @Test func reportsAnUnnamedNodeByItsOutput() throws {
        let (b, x, _, mm, _) = Self.chain()
        let producer = Node(.relu, inputs: [x], outputs: ["later"])
        let reader = Node(.identity, inputs: [producer.outputs[0]], outputs: ["reader_out"])
        try b.graph.insert(reader, before: mm)
        try b.graph.insert(producer, after: mm)
        #expect(Verifier().findings(b.graph) == ["graph 'g': node producing 'reader_out' (Identity) reads 'later' before it is defined"])
    }

    @Test func reportsADuplicateValueName() throws {
        let (b, _, _, mm, _) = Self.chain()
        mm.outputs[0].name = "x"
        #expect(Verifier().findings(b.graph) == ["graph 'g': value 'x' is defined by graph input and by node 'mm' (MatMul)"])

        let (b2, x2, _, _, relu2) = Self.chain()
        let twin = Node(.identity, name: "twin", inputs: [x2], outputs: ["relu_out"])
        b2.graph.append(twin)
        _ = relu2
        #expect(Verifier().findings(b2.graph) == ["graph 'g': value 'relu_out' is defined by node 'relu' (Relu) and by node 'twin' (Identity)"])

        let (b3, _, w3, _, _) = Self.chain()
        w3.name = "x"
        #expect(Verifier().findings(b3.graph) == ["graph 'g': value 'x' is defined by graph input and by initializer"])
    }

    @Test func omittedOutputsAreNotDuplicates() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", .float, [4])
        let n1 = Node(OpType("Dropout"), name: "d1", inputs: [x], outputs: ["d1_out", ""])
        let n2 = Node(OpType("Dropout"), name: "d2", inputs: [n1.outputs[0]], outputs: ["d2_out", ""])
        b.graph.append(n1)
        b.graph.append(n2)
        b.output(n2.outputs[0])
        #expect(n1.outputs[1].isOmitted)
        #expect(Verifier().findings(b.graph).isEmpty)
    }

    @Test func reportsAnUndefinedGraphOutput() throws {
        let (b, _, _, _, _) = Self.chain()
        b.graph.outputs.append(Value(name: "ghost", type: .tensor(.float, [1])))
        #expect(Verifier().findings(b.graph) == ["graph 'g': graph output 'ghost' is not defined"])
    }

    @Test func reportsAGraphOutputOfARemovedNode() throws {
        let (b, _, _, _, relu) = Self.chain()
        // Detach the output by hand (a pass bug): the node goes, the output stays listed.
        b.graph.outputs = []
        try b.graph.remove(relu)
        b.graph.outputs = [relu.outputs[0]]
        #expect(Verifier().findings(b.graph) == ["graph 'g': graph output 'relu_out' is not defined"])
    }

    @Test func reportsAnInitializerWhoseTypeDisagreesWithItsTensor() throws {
        let (b, _, w, _, _) = Self.chain()
        w.type = .tensor(.int64, [4, 2])
        #expect(Verifier().findings(b.graph) == ["graph 'g': initializer 'w' is typed int64[4,2] but holds float data"])
    }

    @Test func reportsAnUntypedMainGraphInputOnly() throws {
        let (b, _, _, _, _) = Self.chain()
        b.graph.addInput(Value(name: "untyped"))
        #expect(Verifier().findings(b.graph) == ["graph 'g': graph input 'untyped' has no type"])

        // Subgraph inputs (Loop/Scan bodies) may leave their type open.
        let body = Graph(name: "body")
        body.addInput(Value(name: "iter"))
        let out = Node(.identity, name: "body_id", inputs: [body.inputs[0]], outputs: ["body_out"])
        body.append(out)
        body.outputs = [out.outputs[0]]
        let b2 = GraphBuilder(name: "g2")
        let cond = b2.input("cond", .bool, [])
        let other = GraphBuilder(name: "other")
        other.output(other.add(.identity, [cond], name: "other_id"))
        b2.output(b2.add(.if, [cond], attributes: [("then_branch", .graph(body)), ("else_branch", .graph(other.graph))], name: "if"))
        #expect(Verifier().findings(b2.graph).isEmpty)
    }

    @Test func reportsBrokenUseLists() throws {
        let (b, x, _, mm, relu) = Self.chain()
        x.useList.removeAll()
        #expect(Verifier().findings(b.graph) == ["graph 'g': value 'x' does not list node 'mm' (MatMul) input 0 as a use"])

        let (b2, _, _, _, relu2) = Self.chain()
        let mmOut2 = b2.graph.value(named: "mm_out")!
        mmOut2.useList.append(Use(node: relu2, inputIndex: 5))
        #expect(Verifier().findings(b2.graph) == ["graph 'g': value 'mm_out' lists a stale use by node 'relu' (Relu)"])

        let (b3, _, _, _, relu3) = Self.chain()
        relu3.outputs[0].outputIndex = 3
        #expect(Verifier().findings(b3.graph) == ["graph 'g': output 0 'relu_out' of node 'relu' (Relu) has a wrong producer"])

        let (b4, _, _, _, relu4) = Self.chain()
        relu4.graph = nil
        #expect(Verifier().findings(b4.graph) == ["graph 'g': node 'relu' (Relu) does not point back to its graph"])
        _ = (mm, relu)
    }

    @Test func reportsStaleUsesOnGraphInputsAndInitializers() throws {
        let (b, x, w, _, relu) = Self.chain()
        // relu reads mm_out, not x or w: both entries are stale.
        x.useList.append(Use(node: relu, inputIndex: 0))
        w.useList.append(Use(node: relu, inputIndex: 0))
        let findings = Verifier(checks: .useLists).findings(b.graph)
        #expect(findings.contains { $0.contains("'x'") && $0.contains("stale use") })
        #expect(findings.contains { $0.contains("'w'") && $0.contains("stale use") })
    }

    @Test func listsEveryFinding() throws {
        let (b, _, w, mm, relu) = Self.chain()
        w.type = .tensor(.int32, [4, 2])
        let early = Node(.identity, name: "early", inputs: [relu.outputs[0]], outputs: ["early_out"])
        try b.graph.insert(early, before: mm)
        b.graph.outputs.append(Value(name: "ghost"))
        let findings = Self.thrownFindings(b.model())
        #expect(findings == [
            "graph 'g': initializer 'w' is typed int32[4,2] but holds float data",
            "graph 'g': node 'early' (Identity) reads 'relu_out' before it is defined",
            "graph 'g': graph output 'ghost' is not defined",
        ])
    }

    // MARK: - Checks option set

    @Test func checksSelectWhatIsReported() throws {
        let (b, _, w, mm, relu) = Self.chain()
        let early = Node(.identity, name: "early", inputs: [relu.outputs[0]], outputs: ["early_out"])
        try b.graph.insert(early, before: mm)
        b.graph.outputs.append(Value(name: "ghost"))

        #expect(Verifier(checks: .ssa).findings(b.graph).isEmpty, "a topological problem is not an SSA finding")
        #expect(Verifier(checks: [.ssa, .useLists, .types]).findings(b.graph).isEmpty)
        #expect(Verifier(checks: .topologicalOrder).findings(b.graph).count == 2)
        #expect(Self.thrownFindings(b.model(), checks: .ssa) == [])

        w.type = .tensor(.int64, [4, 2])
        mm.outputs[0].name = "x"
        #expect(Verifier(checks: .ssa).findings(b.graph) == ["graph 'g': value 'x' is defined by graph input and by node 'mm' (MatMul)"])
        #expect(Verifier(checks: .types).findings(b.graph) == ["graph 'g': initializer 'w' is typed int64[4,2] but holds float data"])
        #expect(Verifier(checks: .useLists).findings(b.graph).isEmpty)
        #expect(Verifier(checks: []).findings(b.graph).isEmpty)
        #expect(Verifier(checks: .all).findings(b.graph).count == 4)
    }

    @Test func checksOptionSetValues() {
        #expect(Verifier.Checks.all == [.ssa, .topologicalOrder, .useLists, .types])
        #expect(Verifier().checks == .all)
        let some: Verifier.Checks = [.ssa, .types]
        #expect(some.contains(.ssa) && some.contains(.types))
        #expect(!some.contains(.topologicalOrder) && !some.contains(.useLists))
        #expect(Set([Verifier.Checks.ssa, .topologicalOrder, .useLists, .types].map(\.rawValue)).count == 4)
    }
}
