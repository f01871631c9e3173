import ONNXProto

/// Conversions between ONNX `TypeProto`/`TensorShapeProto` and ``ValueType``/``Shape``.
enum TypeConversion {
    struct UnknownElementType: Error { let code: Int32 }

    /// The IR type of a `TypeProto`; `nil` when the proto leaves the type open (no value set, or
    /// element type 0).
    ///
    /// - Parameter zeroIsDynamic: Read `dim_value: 0` as a dynamic dim. Pass `true` for the
    ///   declarations onnxruntime only merges with what it infers (`value_info`, graph outputs):
    ///   it runs a model that declares an output `[0, 10]` and makes `[1, 10]`. Graph inputs keep
    ///   a real 0 (an empty tensor), since onnxruntime refuses to feed them any other size.
    static func valueType(_ p: Onnx_TypeProto, zeroIsDynamic: Bool = false) throws -> ValueType? {
        switch p.value {
        case .none:
            return nil
        case .tensorType(let t):
            guard let d = try dtype(t.elemType, has: t.hasElemType) else { return nil }
            return .tensor(d, t.hasShape ? shape(t.shape, zeroIsDynamic: zeroIsDynamic) : nil)
        case .sparseTensorType(let t):
            guard let d = try dtype(t.elemType, has: t.hasElemType) else { return nil }
            return .sparseTensor(d, t.hasShape ? shape(t.shape, zeroIsDynamic: zeroIsDynamic) : nil)
        case .sequenceType(let s):
            return .sequence(s.hasElemType ? try valueType(s.elemType, zeroIsDynamic: zeroIsDynamic) : nil)
        case .optionalType(let o):
            return .optional(o.hasElemType ? try valueType(o.elemType, zeroIsDynamic: zeroIsDynamic) : nil)
        case .mapType(let m):
            guard let k = try dtype(m.keyType, has: m.hasKeyType) else { return nil }
            return .map(key: k, value: m.hasValueType ? try valueType(m.valueType, zeroIsDynamic: zeroIsDynamic) : nil)
        case .opaqueType(let o):
            return .opaque(domain: o.domain, name: o.name)
        }
    }

    private static func dtype(_ code: Int32, has: Bool) throws -> DType? {
        guard has, code != 0 else { return nil }
        guard let d = DType(onnx: code) else { throw UnknownElementType(code: code) }
        return d
    }

    /// The IR shape of a `TensorShapeProto`, with dims as converters write them:
    /// - `dim_value: -1` (paddle2onnx and others) is dynamic: onnxruntime runs it at any size;
    /// - `dim_value: 0` is dynamic when `zeroIsDynamic` (see ``valueType(_:zeroIsDynamic:)``);
    /// - `dim_param: "?"` (paddle2onnx) is dynamic, not a symbol: paddle2onnx writes it for every
    ///   unknown dim, so a `[N, 3, ?, ?]` input does not require height == width;
    /// - any other `dim_param` is a symbol (equal names, equal sizes); an empty one is unknown.
    static func shape(_ p: Onnx_TensorShapeProto, zeroIsDynamic: Bool = false) -> Shape {
        Shape(p.dim.map { d -> Dim in
            switch d.value {
            case .dimValue(let v): return v < 0 || (v == 0 && zeroIsDynamic) ? .unknown : .known(Int(clamping: v))
            case .dimParam(let s): return s.isEmpty || s == "?" ? .unknown : .symbol(s)
            case .none: return .unknown
            }
        })
    }

    /// A `TypeProto` for an IR type.
    static func proto(_ t: ValueType) -> Onnx_TypeProto {
        var p = Onnx_TypeProto()
        switch t {
        case .tensor(let d, let s):
            var tt = Onnx_TypeProto.Tensor()
            tt.elemType = d.rawValue
            if let s { tt.shape = proto(s) }
            p.tensorType = tt
        case .sparseTensor(let d, let s):
            var tt = Onnx_TypeProto.SparseTensor()
            tt.elemType = d.rawValue
            if let s { tt.shape = proto(s) }
            p.sparseTensorType = tt
        case .sequence(let e):
            var s = Onnx_TypeProto.Sequence()
            if let e { s.elemType = proto(e) }
            p.sequenceType = s
        case .optional(let e):
            var o = Onnx_TypeProto.Optional()
            if let e { o.elemType = proto(e) }
            p.optionalType = o
        case .map(let k, let v):
            var m = Onnx_TypeProto.Map()
            m.keyType = k.rawValue
            if let v { m.valueType = proto(v) }
            p.mapType = m
        case .opaque(let d, let n):
            var o = Onnx_TypeProto.Opaque()
            o.domain = d
            o.name = n
            p.opaqueType = o
        }
        return p
    }

    static func proto(_ s: Shape) -> Onnx_TensorShapeProto {
        var p = Onnx_TensorShapeProto()
        p.dim = s.dims.map { d in
            var dp = Onnx_TensorShapeProto.Dimension()
            switch d {
            case .known(let v): dp.dimValue = Int64(v)
            case .symbol(let n): dp.dimParam = n
            case .unknown: break
            }
            return dp
        }
        return p
    }
}
