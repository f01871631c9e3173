/// Rules for element-wise ops: unary ops keep their input's type, binary and variadic ops
/// broadcast numpy-style, comparisons and logical ops give `bool`, `Cast` gives its `to`.
extension ShapeInference {
    /// Ops whose single output has the type and shape of input 0.
    static let sameAsInput: Set<String> = [
        "Relu", "Sigmoid", "Tanh", "Erf", "Gelu", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
        "Cos", "Sin", "Tan", "Acos", "Asin", "Atan", "Cosh", "Sinh", "Acosh", "Asinh", "Atanh",
        "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "HardSigmoid",
        "HardSwish", "Mish", "Swish", "Clip", "Sign", "Floor", "Ceil", "Round", "Not", "BitwiseNot",
        "Shrink", "Softmax", "LogSoftmax", "Hardmax", "LRN", "MeanVarianceNormalization", "CumSum",
        "Trilu", "ReverseSequence", "Det", "Scatter", "ScatterElements", "ScatterND",
        "InstanceNormalization", "GroupNormalization", "LpNormalization", "RMSNormalization",
    ]

    /// Binary/variadic ops whose output has input 0's element type.
    static let broadcastSameType: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Mod", "PRelu",
        "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
    ]

    /// Binary ops whose output is `bool`.
    static let broadcastBool: Set<String> = [
        "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
    ]

    static func inferElementwise(_ c: NodeContext) -> [Inferred]? {
        let op = c.node.opType.name
        if sameAsInput.contains(op) {
            if op == "Det", let s = c.shape(0), s.rank >= 2 { return [Inferred(c.dtype(0), Shape(Array(s.dims.dropLast(2))))] }
            return [Inferred(c.dtype(0), c.shape(0))]
        }
        if broadcastSameType.contains(op) || broadcastBool.contains(op) {
            let shapes = c.node.inputs.indices.map { c.shape($0) }
            let shape = shapes.isEmpty ? nil : DimMath.broadcast(shapes)
            if op == "PRelu" {
                // The slope broadcasts to X (unidirectionally); the output is X's shape.
                return [Inferred(c.dtype(0), c.shape(0) ?? shape)]
            }
            let dtype = broadcastBool.contains(op) ? .bool : (c.dtype(0) ?? c.dtype(1))
            return [Inferred(dtype, shape)]
        }
        switch op {
        case "Identity":
            return [Inferred(type: c.type(0))]
        case "Where":
            return [Inferred(c.dtype(1) ?? c.dtype(2), DimMath.broadcast([c.shape(0), c.shape(1), c.shape(2)]))]
        case "IsNaN", "IsInf":
            return [Inferred(.bool, c.shape(0))]
        case "Cast":
            let to = c.attrInt("to").flatMap { DType(onnx: Int32(clamping: $0)) }
            return [Inferred(to, c.shape(0))]
        case "CastLike":
            return [Inferred(c.dtype(1), c.shape(0))]
        case "Dropout":
            return [Inferred(c.dtype(0), c.shape(0)), Inferred(.bool, c.shape(0))]
        case "QuantizeLinear":
            let to = c.attrInt("output_dtype").flatMap { $0 == 0 ? nil : DType(onnx: Int32(clamping: $0)) }
            return [Inferred(to ?? c.dtype(2) ?? .uint8, c.shape(0))]
        case "DequantizeLinear":
            let to = c.attrInt("output_dtype").flatMap { $0 == 0 ? nil : DType(onnx: Int32(clamping: $0)) }
            return [Inferred(to ?? c.dtype(1) ?? .float, c.shape(0))]
        case "EyeLike", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial":
            let to = c.attrInt("dtype").flatMap { DType(onnx: Int32(clamping: $0)) }
            if op == "Multinomial" {
                guard let s = c.shape(0), s.rank == 2 else { return [Inferred(to ?? .int32, nil)] }
                return [Inferred(to ?? .int32, Shape([s.dims[0], c.attrInt("sample_size").map(Dim.known) ?? .known(1)]))]
            }
            return [Inferred(to ?? c.dtype(0), c.shape(0))]
        case "RandomNormal", "RandomUniform":
            let to = c.attrInt("dtype").flatMap { DType(onnx: Int32(clamping: $0)) } ?? .float
            return [Inferred(to, c.attrInts("shape").map { Shape($0) })]
        default:
            return nil
        }
    }
}
