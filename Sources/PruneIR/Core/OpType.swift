/// An operator: its domain and its name, as ONNX spells them (`Conv`, `MatMul`, `Gemm`).
///
/// The default domain may be written `""` or `"ai.onnx"`; the two compare equal. The spelling
/// the model used is kept so an unchanged node is written back byte-identical.
public struct OpType: Hashable, Sendable, CustomStringConvertible {
    /// The domain as written in the model (`""`, `"ai.onnx"`, `"com.microsoft"`, ...).
    public var domain: String
    /// The operator name.
    public var name: String

    /// Creates an op type; the domain defaults to the ONNX default domain.
    public init(_ name: String, domain: String = "") {
        self.name = name
        self.domain = domain
    }

    /// The domain with `"ai.onnx"` normalised to `""`.
    public var canonicalDomain: String { domain == "ai.onnx" ? "" : domain }

    public static func == (a: OpType, b: OpType) -> Bool {
        a.name == b.name && a.canonicalDomain == b.canonicalDomain
    }

    public func hash(into h: inout Hasher) {
        h.combine(name)
        h.combine(canonicalDomain)
    }

    /// `Conv`, or `com.microsoft.Attention` outside the default domain.
    public var description: String { canonicalDomain.isEmpty ? name : "\(canonicalDomain).\(name)" }
}

extension OpType {
    public static let add = OpType("Add")
    public static let sub = OpType("Sub")
    public static let mul = OpType("Mul")
    public static let div = OpType("Div")
    public static let pow = OpType("Pow")
    public static let sqrt = OpType("Sqrt")
    public static let relu = OpType("Relu")
    public static let sigmoid = OpType("Sigmoid")
    public static let tanh = OpType("Tanh")
    public static let erf = OpType("Erf")
    public static let gelu = OpType("Gelu")
    public static let identity = OpType("Identity")
    public static let conv = OpType("Conv")
    public static let convTranspose = OpType("ConvTranspose")
    public static let matMul = OpType("MatMul")
    public static let gemm = OpType("Gemm")
    public static let batchNormalization = OpType("BatchNormalization")
    public static let layerNormalization = OpType("LayerNormalization")
    public static let groupNormalization = OpType("GroupNormalization")
    public static let instanceNormalization = OpType("InstanceNormalization")
    public static let softmax = OpType("Softmax")
    public static let reshape = OpType("Reshape")
    public static let transpose = OpType("Transpose")
    public static let concat = OpType("Concat")
    public static let split = OpType("Split")
    public static let slice = OpType("Slice")
    public static let gather = OpType("Gather")
    public static let squeeze = OpType("Squeeze")
    public static let unsqueeze = OpType("Unsqueeze")
    public static let expand = OpType("Expand")
    public static let shape = OpType("Shape")
    public static let constant = OpType("Constant")
    public static let constantOfShape = OpType("ConstantOfShape")
    public static let cast = OpType("Cast")
    public static let resize = OpType("Resize")
    public static let einsum = OpType("Einsum")
    public static let `if` = OpType("If")
    public static let loop = OpType("Loop")
    public static let scan = OpType("Scan")
    public static let maxPool = OpType("MaxPool")
    public static let averagePool = OpType("AveragePool")
    public static let globalAveragePool = OpType("GlobalAveragePool")
    public static let flatten = OpType("Flatten")
}
