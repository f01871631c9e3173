import Foundation
import ONNXProto
import PruneTestSupport
import Testing

@testable import PruneIR

/// `Model.copy()`: the copy exports the same bytes, shares no graph, node or value with the
/// original, and edits to it leave the original as it was.
@Suite struct ModelCopyTests {
    // MARK: - Helpers

    /// Every graph, node and value reachable from a model's main graph.
    private struct Objects {
        var graphs: [Graph] = []
        var nodes: [Node] = []
        var values: [Value] = []

        init(_ model: Model) { collect(model.graph) }

        private mutating func collect(_ g: Graph) {
            graphs.append(g)
            values += g.inputs + g.initializers + g.outputs + g.valueInfos
            for n in g.nodes {
                nodes.append(n)
                values += n.inputs.compactMap { $0 } + n.outputs
                for sub in n.subgraphs { collect(sub) }
            }
        }

        var ids: Set<ObjectIdentifier> {
            Set(graphs.map(ObjectIdentifier.init) + nodes.map(ObjectIdentifier.init) + values.map(ObjectIdentifier.init))
        }
    }

    /// Checks that no object is shared and that every use, producer and owner of the copy points
    /// into the copy.
    private static func expectDisjointAndClosed(_ original: Model, _ copy: Model, _ label: String) {
        let a = Objects(original)
        let b = Objects(copy)
        #expect(a.ids.isDisjoint(with: b.ids), "\(label): the copy shares objects with the original")
        #expect(a.nodes.count == b.nodes.count, "\(label): node count")
        #expect(a.graphs.count == b.graphs.count, "\(label): graph count")
        let graphs = Set(b.graphs.map(ObjectIdentifier.init))
        let nodes = Set(b.nodes.map(ObjectIdentifier.init))
        for v in b.values {
            for u in v.uses { #expect(nodes.contains(ObjectIdentifier(u.node)), "\(label): a use of '\(v.name)' leaves the copy") }
            if let p = v.producer { #expect(nodes.contains(ObjectIdentifier(p)), "\(label): producer of '\(v.name)'") }
            if let g = v.owningGraph { #expect(graphs.contains(ObjectIdentifier(g)), "\(label): owner of '\(v.name)'") }
        }
        for n in b.nodes {
            #expect(n.graph.map { graphs.contains(ObjectIdentifier($0)) } == true, "\(label): graph of \(n.displayName)")
            for sub in n.subgraphs { #expect(sub.parentNode === n, "\(label): parent of subgraph '\(sub.name)'") }
        }
        // Same use lists, in the same order, by node name and slot.
        for (va, vb) in zip(a.values, b.values) {
            #expect(va.name == vb.name)
            #expect(va.uses.map { "\($0.node.name):\($0.inputIndex)" } == vb.uses.map { "\($0.node.name):\($0.inputIndex)" },
                    "\(label): uses of '\(va.name)'")
        }
    }

    /// `main(cond, x)`: `If` whose branches read the outer `x` and `outer_relu`'s output.
    private static func ifModel() -> Model {
        let b = GraphBuilder(name: "main")
        let cond = b.input("cond", .bool, [])
        let x = b.input("x", .float, [2])
        let y = b.add(.relu, [x], name: "outer_relu")
        let tb = GraphBuilder(name: "then")
        tb.output(tb.add(OpType("Neg"), [x], name: "then_neg"))
        let eb = GraphBuilder(name: "else")
        eb.output(eb.add(.add, [x, y], name: "else_add"))
        let out = b.node(.if, [cond], attributes: [("then_branch", .graph(tb.graph)), ("else_branch", .graph(eb.graph))], name: "if")
        b.output(out[0])
        return b.model(opset: 17)
    }

    // MARK: - Tests

    @Test func exampleModelsCopyToTheSameBytes() throws {
        let models = TestPaths.exampleModels
        #expect(models.count >= 10)
        for url in models {
            let original = try Data(contentsOf: url)
            let model = try ModelImporter.load(contentsOf: url)
            let copy = model.copy()
            #expect(copy.sourceURL == model.sourceURL)
            #expect(try ModelExporter.serialize(copy) == original, "\(url.lastPathComponent): copy exports other bytes")
            Self.expectDisjointAndClosed(model, copy, url.lastPathComponent)
            try Verifier().verify(copy)
        }
    }

    @Test func editingTheCopyLeavesTheOriginal() throws {
        let url = try #require(TestPaths.exampleModels.first { $0.lastPathComponent == "resnet.onnx" })
        let bytes = try Data(contentsOf: url)
        let model = try ModelImporter.load(contentsOf: url)
        let copy = model.copy()

        let w = try #require(copy.graph.initializers.first { ($0.initializer?.elementCount ?? 0) > 1 })
        let wt = try #require(w.initializer)
        copy.graph.setInitializer(w, to: Tensor(floats: [Float](repeating: 0, count: wt.elementCount), shape: wt.shape))
        let first = try #require(copy.graph.nodes.first)
        first.name = "renamed"
        first.setAttribute("prunec_mark", .int(7))
        copy.graph.outputs[0].type = nil
        copy.producerName = "someone else"
        copy.metadata = [(key: "k", value: "v")]
        copy.opsetImports = [OpsetImport(version: 7)]

        #expect(try ModelExporter.serialize(model) == bytes, "the original changed with its copy")
        #expect(try ModelExporter.serialize(copy) != bytes)
        let original = try #require(model.graph.value(named: w.name)?.initializer)
        #expect(try original.floats() == wt.floats())
        #expect(try copy.graph.value(named: w.name)?.initializer?.floats().allSatisfy { $0 == 0 } == true)
        #expect(model.graph.nodes.first?.name != "renamed")
        #expect(model.producerName != "someone else")
    }

    @Test func subgraphOuterUsesPointIntoTheCopy() throws {
        let built = Self.ifModel()
        let bytes = try ModelExporter.serialize(built)
        let model = try ModelImporter.load(serialized: bytes, file: "if.onnx", baseDirectory: nil)
        let copy = model.copy()
        #expect(try ModelExporter.serialize(copy) == bytes)
        Self.expectDisjointAndClosed(model, copy, "if.onnx")
        try Verifier().verify(copy)

        let x = try #require(copy.graph.value(named: "x"))
        #expect(x.uses.map { "\($0.node.name):\($0.inputIndex)" } == ["outer_relu:0", "then_neg:0", "else_add:0"])
        let ifNode = try #require(copy.graph.node(named: "if"))
        let thenBranch = try #require(try ifNode.attribute("then_branch", as: Graph.self))
        #expect(thenBranch.nodes[0].inputs[0] === x)
        #expect(x.uses[1].node.graph === thenBranch)

        // Rewiring the copy's branch leaves the original's outer uses alone.
        let relu = try #require(copy.graph.node(named: "outer_relu")?.outputs[0])
        thenBranch.nodes[0].setInput(relu, at: 0)
        #expect(x.uses.count == 2)
        #expect(try #require(model.graph.value(named: "x")).uses.count == 3)
        #expect(try ModelExporter.serialize(model) == bytes)
    }

    @Test func builtModelCopiesUnsavedChanges() throws {
        // A model never written: types set in memory and attributes added by code are copied too.
        let model = Self.ifModel()
        let copy = model.copy()
        #expect(try ModelExporter.serialize(copy) == ModelExporter.serialize(model))
        Self.expectDisjointAndClosed(model, copy, "built")
    }

    @Test func externalDataCopyWritesTheSameFiles() throws {
        let dir = try TestPaths.temporaryDirectory("copy-ext")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = GraphBuilder(name: "net")
        let x = b.input("x", .float, [1, 600])
        let w = b.initializer("w", Tensor(floats: (0 ..< 600 * 8).map { Float($0 % 13) * 0.25 }, shape: [600, 8]))
        let bias = b.initializer("b", Tensor(floats: (0 ..< 8).map { Float($0) }, shape: [8]))
        b.output(b.add(.gemm, [x, w, bias], name: "fc"))
        let source = dir.appendingPathComponent("net.onnx")
        try ModelExporter.write(b.model(opset: 17), to: source, options: ExportOptions(externalData: .all(threshold: 1024)))

        let model = try ModelImporter.load(contentsOf: source)
        let copy = model.copy()
        let wCopy = try #require(copy.graph.value(named: "w")?.initializer)
        #expect(wCopy.external == ExternalDataReference(location: "net.onnx.data", offset: 0, length: 600 * 8 * 4))
        #expect(try wCopy.floats() == model.graph.value(named: "w")?.initializer?.floats())

        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try ModelExporter.write(copy, to: out.appendingPathComponent("net.onnx"))
        #expect(try Data(contentsOf: out.appendingPathComponent("net.onnx")) == Data(contentsOf: source))
        #expect(try Data(contentsOf: out.appendingPathComponent("net.onnx.data")) == Data(contentsOf: dir.appendingPathComponent("net.onnx.data")))
    }
}
