/// One dimension of a tensor shape: a number, a named symbol shared across values, or unknown.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case known(Int)
    case symbol(String)
    case unknown

    /// The number, if the dimension is known.
    public var value: Int? {
        if case .known(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .known(let v): return String(v)
        case .symbol(let s): return s
        case .unknown: return "?"
        }
    }
}

/// The shape of a tensor value: its rank and a ``Dim`` per axis.
///
/// A shape whose rank is unknown is represented by `nil` where a shape is optional
/// (``ValueType/tensor(_:_:)``), never by an empty `Shape`, which is a scalar.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// The dimensions, outermost first.
    public var dims: [Dim]

    /// Creates a shape from its dimensions.
    @_disfavoredOverload
    public init(_ dims: [Dim]) { self.dims = dims }

    /// Creates a fully known shape.
    public init(_ dims: [Int]) { self.dims = dims.map { .known($0) } }

    public init(arrayLiteral elements: Int...) { self.dims = elements.map { .known($0) } }

    /// Number of axes.
    public var rank: Int { dims.count }

    /// The dimensions as numbers when every dimension is known.
    public var staticDims: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(dims.count)
        for d in dims {
            guard case .known(let v) = d else { return nil }
            out.append(v)
        }
        return out
    }

    /// Number of elements when every dimension is known (`nil` on overflow or unknown dims).
    public var elementCount: Int? {
        guard let s = staticDims else { return nil }
        return Shape.product(s)
    }

    /// The product of `dims`, or `nil` when it overflows or a dim is negative.
    public static func product(_ dims: [Int]) -> Int? {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (r, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = r
        }
        return n
    }

    /// `[1,3,224,224]`-style text; symbols print by name, unknown dims as `?`.
    public var description: String {
        "[" + dims.map(\.description).joined(separator: ",") + "]"
    }
}

/// The type of a graph value, following ONNX's `TypeProto`.
public indirect enum ValueType: Hashable, Sendable, CustomStringConvertible {
    /// A dense tensor; the shape is `nil` when the rank is unknown.
    case tensor(DType, Shape?)
    /// A sparse tensor.
    case sparseTensor(DType, Shape?)
    /// A sequence of values of one type (`nil` when the element type is unknown).
    case sequence(ValueType?)
    /// An optional value.
    case optional(ValueType?)
    /// A map from a key element type to values.
    case map(key: DType, value: ValueType?)
    /// An opaque type of a custom domain.
    case opaque(domain: String, name: String)

    /// The element type when this is a tensor type.
    public var elementType: DType? {
        switch self {
        case .tensor(let d, _), .sparseTensor(let d, _): return d
        default: return nil
        }
    }

    /// The shape when this is a tensor type with known rank.
    public var shape: Shape? {
        switch self {
        case .tensor(_, let s), .sparseTensor(_, let s): return s
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .tensor(let d, let s): return "\(d)\(s.map(\.description) ?? "[*]")"
        case .sparseTensor(let d, let s): return "sparse \(d)\(s.map(\.description) ?? "[*]")"
        case .sequence(let e): return "seq(\(e.map(\.description) ?? "?"))"
        case .optional(let e): return "optional(\(e.map(\.description) ?? "?"))"
        case .map(let k, let v): return "map(\(k),\(v.map(\.description) ?? "?"))"
        case .opaque(let d, let n): return "opaque(\(d).\(n))"
        }
    }
}
