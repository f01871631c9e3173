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

extension Onnx_ValueInfoProto {
    /// A tensor value; `dims` `nil` leaves the shape unset.
    public static func tensor(_ name: String, elemType: Int32 = 1, dims: [Int64]? = nil) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = elemType
        if let dims {
            var s = Onnx_TensorShapeProto()
            s.dim = dims.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                dim.dimValue = d
                return dim
            }
            t.shape = s
        }
        v.type.tensorType = t
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
