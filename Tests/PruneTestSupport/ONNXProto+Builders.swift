import ONNXProto

// Short ways to write the protobuf messages tests build by hand (bad models, wire-level cases).

extension Onnx_ModelProto {
    /// A model importing the default domain at `opset`, with an optional graph.
    public init(irVersion: Int64, opset: Int64, graph: Onnx_GraphProto? = nil) {
        self.init()
        self.irVersion = irVersion
        var o = Onnx_OperatorSetIdProto()
        o.version = opset
        opsetImport = [o]
        if let graph { self.graph = graph }
    }
}

extension Onnx_NodeProto {
    /// A node; the name is left unset when `nil`.
    public init(_ opType: String, _ inputs: [String], _ outputs: [String], name: String? = nil) {
        self.init()
        self.opType = opType
        input = inputs
        output = outputs
        if let name { self.name = name }
    }
}

/// A dimension of a hand-built shape: a number (`4`) or a symbol (`"N"`).
public enum DimSpec: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    case value(Int64)
    case param(String)

    public init(integerLiteral value: Int64) { self = .value(value) }
    public init(stringLiteral value: String) { self = .param(value) }
}

extension Onnx_ValueInfoProto {
    /// A tensor value; `dims` `nil` leaves the shape unset, `doc` empty leaves doc_string unset.
    public static func tensor(_ name: String, elemType: Int32 = 1, dims: [DimSpec]? = nil, doc: String = "") -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = elemType
        if let dims {
            var s = Onnx_TensorShapeProto()
            s.dim = dims.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                switch d {
                case .value(let n): dim.dimValue = n
                case .param(let symbol): dim.dimParam = symbol
                }
                return dim
            }
            t.shape = s
        }
        v.type.tensorType = t
        if !doc.isEmpty { v.docString = doc }
        return v
    }
}

extension Onnx_StringStringEntryProto {
    /// Entries in order, e.g. a tensor's `external_data`.
    public static func entries(_ pairs: [(String, String)]) -> [Onnx_StringStringEntryProto] {
        pairs.map { k, v in
            var e = Onnx_StringStringEntryProto()
            e.key = k
            e.value = v
            return e
        }
    }
}
