import Foundation
import ONNXProto
import PruneTestSupport
import Testing

@testable import PruneIR

/// Typed attribute access, attribute edits on imported nodes, and attributes written without a
/// `type` field.
@Suite struct AttributeTests {
    // MARK: - Helpers

    private static func node(_ attributes: [(String, Attribute)], name: String = "n", op: OpType = OpType("Custom")) -> Node {
        let x = Value(name: "x", type: .tensor(.float, [1]))
        return Node(op, name: name, inputs: [x], outputs: ["y"], attributes: attributes)
    }

    private static func attr(_ name: String, _ configure: (inout Onnx_AttributeProto) -> Void) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        configure(&a)
        return a
    }

    /// A model with one node `op 'node0'(x) -> y` carrying `attributes`.
    private static func model(_ attributes: [Onnx_AttributeProto], op: String = "Custom") throws -> Data {
        var x = Onnx_ValueInfoProto()
        x.name = "x"
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = DType.float.rawValue
        x.type.tensorType = tt
        var y = Onnx_ValueInfoProto()
        y.name = "y"
        var n = Onnx_NodeProto()
        n.name = "node0"
        n.opType = op
        n.input = ["x"]
        n.output = ["y"]
        n.attribute = attributes
        var g = Onnx_GraphProto()
        g.name = "attrs"
        g.input = [x]
        g.output = [y]
        g.node = [n]
        var m = Onnx_ModelProto(irVersion: 8, opset: 17)
        m.graph = g
        return try m.serializedBytes()
    }

    private static func load(_ data: Data) throws -> Model {
        try ModelImporter.load(serialized: data, file: "attrs.onnx", baseDirectory: nil)
    }

    // MARK: - Typed access

    @Test func typedAccess() throws {
        let t = Tensor(floats: [1, 2], shape: [2])
        let n = Self.node([
            ("axis", .int(-1)),
            ("perm", .ints([0, 2, 1])),
            ("alpha", .float(0.25)),
            ("scales", .floats([1, 2.5])),
            ("mode", .string("nearest")),
            ("names", .strings(["a", "b"])),
            ("value", .tensor(t)),
        ])
        #expect(try n.attribute("axis", as: Int.self) == -1)
        #expect(try n.attribute("axis", as: Int64.self) == -1)
        #expect(try n.attribute("perm", as: [Int64].self) == [0, 2, 1])
        #expect(try n.attribute("perm", as: [Int].self) == [0, 2, 1])
        #expect(try n.attribute("alpha", as: Float.self) == 0.25)
        #expect(try n.attribute("scales", as: [Float].self) == [1, 2.5])
        #expect(try n.attribute("mode", as: String.self) == "nearest")
        #expect(try n.attribute("names", as: [String].self) == ["a", "b"])
        #expect(try n.attribute("value", as: Tensor.self) == t)
        #expect(n.attributes.map(\.name) == ["axis", "perm", "alpha", "scales", "mode", "names", "value"])

        if case .int(let v) = n[attribute: "axis"] { #expect(v == -1) } else { Issue.record("axis is not INT") }
        #expect(n[attribute: "missing"] == nil)
    }

    @Test func missingAttributeIsNil() throws {
        let n = Self.node([("axis", .int(1))])
        #expect(try n.attribute("keepdims", as: Int.self) == nil)
        #expect(try n.attribute("perm", as: [Int64].self) == nil)
        #expect(try n.attribute("mode", as: String.self) == nil)
        #expect(try n.attribute("then_branch", as: Graph.self) == nil)
    }

    @Test func kindMismatchThrowsNamingTheNode() throws {
        let n = Self.node([("axis", .int(1)), ("perm", .ints([1, 0])), ("mode", .string("x"))], name: "transpose7", op: .transpose)
        #expect(throws: IRError.attributeKind(node: "'transpose7' (Transpose)", name: "axis", expected: "FLOAT", actual: "INT")) {
            try n.attribute("axis", as: Float.self)
        }
        #expect(throws: IRError.attributeKind(node: "'transpose7' (Transpose)", name: "axis", expected: "INTS", actual: "INT")) {
            try n.attribute("axis", as: [Int64].self)
        }
        #expect(throws: IRError.attributeKind(node: "'transpose7' (Transpose)", name: "perm", expected: "INT", actual: "INTS")) {
            try n.attribute("perm", as: Int.self)
        }
        #expect(throws: IRError.attributeKind(node: "'transpose7' (Transpose)", name: "perm", expected: "FLOATS", actual: "INTS")) {
            try n.attribute("perm", as: [Float].self)
        }
        #expect(throws: IRError.attributeKind(node: "'transpose7' (Transpose)", name: "mode", expected: "GRAPH", actual: "STRING")) {
            try n.attribute("mode", as: Graph.self)
        }
        do {
            _ = try n.attribute("axis", as: String.self)
            Issue.record("expected a throw")
        } catch let e as IRError {
            #expect(e.description == "node 'transpose7' (Transpose): attribute 'axis' is INT, expected STRING")
            #expect(e.description.contains("transpose7"))
        }
        // An unnamed node is named by its first output.
        let unnamed = Self.node([("axis", .int(1))], name: "")
        #expect(throws: IRError.attributeKind(node: "producing 'y' (Custom)", name: "axis", expected: "FLOAT", actual: "INT")) {
            try unnamed.attribute("axis", as: Float.self)
        }
    }

    @Test func kindNames() {
        #expect(Attribute.int(1).kindName == "INT")
        #expect(Attribute.float(1).kindName == "FLOAT")
        #expect(Attribute.string("").kindName == "STRING")
        #expect(Attribute.ints([]).kindName == "INTS")
        #expect(Attribute.floats([]).kindName == "FLOATS")
        #expect(Attribute.strings([]).kindName == "STRINGS")
        #expect(Attribute.tensor(.scalar(Float(0))).kindName == "TENSOR")
        #expect(Attribute.tensors([]).kindName == "TENSORS")
        #expect(Attribute.graph(Graph()).kindName == "GRAPH")
        #expect(Attribute.graphs([]).kindName == "GRAPHS")
        #expect(Attribute.typeProto(nil).kindName == "TYPE_PROTO")
        #expect(Attribute.typeProtos([]).kindName == "TYPE_PROTOS")
        #expect(Attribute.sparseTensor(Onnx_SparseTensorProto()).kindName == "SPARSE_TENSOR")
        #expect(Attribute.sparseTensors([]).kindName == "SPARSE_TENSORS")
    }

    @Test func setAndRemoveAttributeInMemory() throws {
        let n = Self.node([("axis", .int(1)), ("mode", .string("a"))])
        n.setAttribute("axis", .int(3))
        n.setAttribute("extra", .floats([0.5]))
        #expect(n.attributes.map(\.name) == ["axis", "mode", "extra"], "an existing attribute keeps its place")
        #expect(try n.attribute("axis", as: Int.self) == 3)
        #expect(try n.attribute("extra", as: [Float].self) == [0.5])
        n.setAttribute("axis", .float(2))
        #expect(try n.attribute("axis", as: Float.self) == 2)
        n.removeAttribute("mode")
        #expect(n.attributes.map(\.name) == ["axis", "extra"])
        #expect(try n.attribute("mode", as: String.self) == nil)
    }

    // MARK: - Imported attributes

    @Test func importedAttributesReadTyped() throws {
        var t = Onnx_TensorProto()
        t.dataType = DType.int64.rawValue
        t.dims = [2]
        t.int64Data = [4, 5]
        let m = try Self.load(Self.model([
            Self.attr("axis") { $0.type = .int; $0.i = 2 },
            Self.attr("alpha") { $0.type = .float; $0.f = 0.5 },
            Self.attr("mode") { $0.type = .string; $0.s = Data("linear".utf8) },
            Self.attr("pads") { $0.type = .ints; $0.ints = [1, 1, 0, 0] },
            Self.attr("scales") { $0.type = .floats; $0.floats = [2, 3] },
            Self.attr("labels") { $0.type = .strings; $0.strings = [Data("p".utf8), Data("q".utf8)] },
            Self.attr("value") { $0.type = .tensor; $0.t = t },
        ]))
        let n = try #require(m.graph.node(named: "node0"))
        #expect(try n.attribute("axis", as: Int.self) == 2)
        #expect(try n.attribute("alpha", as: Float.self) == 0.5)
        #expect(try n.attribute("mode", as: String.self) == "linear")
        #expect(try n.attribute("pads", as: [Int64].self) == [1, 1, 0, 0])
        #expect(try n.attribute("scales", as: [Float].self) == [2, 3])
        #expect(try n.attribute("labels", as: [String].self) == ["p", "q"])
        #expect(try n.attribute("value", as: Tensor.self)?.int64s() == [4, 5])
        #expect(throws: IRError.attributeKind(node: "'node0' (Custom)", name: "pads", expected: "INT", actual: "INTS")) {
            try n.attribute("pads", as: Int.self)
        }
    }

    @Test func setAttributeRewritesOnlyThatAttributeOnExport() throws {
        let original = [
            Self.attr("axis") { $0.type = .int; $0.i = 1; $0.docString = "which axis" },
            Self.attr("mode") { $0.type = .string; $0.s = Data("constant".utf8); $0.docString = "kept verbatim" },
            // Written by an old exporter: no `type` field.
            Self.attr("pads") { $0.ints = [0, 1, 0, 1] },
            Self.attr("value") { $0.type = .float; $0.f = 1.5 },
        ]
        let bytes = try Self.model(original, op: "Pad")
        let m = try Self.load(bytes)
        #expect(try ModelExporter.serialize(m) == bytes, "an untouched model is written back byte-identical")

        let n = try #require(m.graph.node(named: "node0"))
        n.setAttribute("axis", .int(-2))
        n.setAttribute("added", .ints([7]))
        let out = try Onnx_ModelProto(serializedBytes: ModelExporter.serialize(m))
        let attrs = out.graph.node[0].attribute
        #expect(attrs.map(\.name) == ["axis", "mode", "pads", "value", "added"])

        // The changed attribute is rebuilt from the IR.
        #expect(attrs[0].type == .int)
        #expect(attrs[0].i == -2)
        #expect(!attrs[0].hasDocString)
        // Untouched attributes stay byte-identical, including ones without `type`.
        for i in 1 ..< 4 {
            #expect(try attrs[i].serializedBytes() as Data == original[i].serializedBytes() as Data, "attribute \(original[i].name)")
        }
        #expect(!attrs[2].hasType)
        #expect(attrs[1].docString == "kept verbatim")
        // The added attribute is typed.
        #expect(attrs[4].type == .ints && attrs[4].ints == [7])

        let again = try Self.load(ModelExporter.serialize(m))
        let n2 = try #require(again.graph.node(named: "node0"))
        #expect(try n2.attribute("axis", as: Int.self) == -2)
        #expect(try n2.attribute("added", as: [Int64].self) == [7])
        #expect(try n2.attribute("pads", as: [Int64].self) == [0, 1, 0, 1])
    }

    @Test func removedAttributeIsNotExported() throws {
        let bytes = try Self.model([
            Self.attr("axis") { $0.type = .int; $0.i = 1 },
            Self.attr("mode") { $0.type = .string; $0.s = Data("x".utf8) },
        ])
        let m = try Self.load(bytes)
        let n = try #require(m.graph.node(named: "node0"))
        n.removeAttribute("axis")
        let out = try Onnx_ModelProto(serializedBytes: ModelExporter.serialize(m))
        #expect(out.graph.node[0].attribute.map(\.name) == ["mode"])

        // Setting it again writes the new value, not the imported proto.
        n.setAttribute("axis", .int(9))
        let out2 = try Onnx_ModelProto(serializedBytes: ModelExporter.serialize(m))
        #expect(out2.graph.node[0].attribute.map(\.name) == ["mode", "axis"])
        #expect(out2.graph.node[0].attribute[1].i == 9)
    }

    @Test func untypedAttributesImportByTheFieldPresent() throws {
        var t = Onnx_TensorProto()
        t.dataType = DType.float.rawValue
        t.dims = [1]
        t.floatData = [3]
        let m = try Self.load(Self.model([
            Self.attr("f") { $0.f = 0.75 },
            Self.attr("i") { $0.i = 42 },
            Self.attr("zero") { $0.i = 0 },
            Self.attr("s") { $0.s = Data("text".utf8) },
            Self.attr("t") { $0.t = t },
            Self.attr("fs") { $0.floats = [1, 2] },
            Self.attr("is") { $0.ints = [3, 4, 5] },
            Self.attr("ss") { $0.strings = [Data("u".utf8)] },
        ]))
        let n = try #require(m.graph.node(named: "node0"))
        #expect(n.attributes.map { $0.value.kindName } == ["FLOAT", "INT", "INT", "STRING", "TENSOR", "FLOATS", "INTS", "STRINGS"])
        #expect(try n.attribute("f", as: Float.self) == 0.75)
        #expect(try n.attribute("i", as: Int.self) == 42)
        #expect(try n.attribute("zero", as: Int.self) == 0)
        #expect(try n.attribute("s", as: String.self) == "text")
        #expect(try n.attribute("t", as: Tensor.self)?.floats() == [3])
        #expect(try n.attribute("fs", as: [Float].self) == [1, 2])
        #expect(try n.attribute("is", as: [Int].self) == [3, 4, 5])
        #expect(try n.attribute("ss", as: [String].self) == ["u"])
        #expect(throws: IRError.attributeKind(node: "'node0' (Custom)", name: "i", expected: "FLOAT", actual: "INT")) {
            try n.attribute("i", as: Float.self)
        }
    }

    @Test func graphAttributeTypedAccess() throws {
        let b = GraphBuilder(name: "main")
        let cond = b.input("cond", .bool, [])
        let tb = GraphBuilder(name: "then")
        tb.output(tb.add(.identity, [cond], name: "t"))
        let eb = GraphBuilder(name: "else")
        eb.output(eb.add(.identity, [cond], name: "e"))
        let out = b.add(.if, [cond], attributes: [("then_branch", .graph(tb.graph)), ("else_branch", .graph(eb.graph))], name: "if")
        b.output(out)
        let n = try #require(out.producer)
        #expect(try n.attribute("then_branch", as: Graph.self) === tb.graph)
        #expect(try n.attribute("else_branch", as: Graph.self)?.name == "else")
        #expect(n.subgraphs.map(\.name) == ["then", "else"])
        #expect(throws: IRError.attributeKind(node: "'if' (If)", name: "then_branch", expected: "INT", actual: "GRAPH")) {
            try n.attribute("then_branch", as: Int.self)
        }
    }
}
