import Foundation
import ONNXProto

/// A node attribute value, typed as in ONNX's `AttributeProto`.
///
/// Read one with ``Node/attribute(_:as:)``, which throws on a kind mismatch instead of trapping.
public enum Attribute {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(Tensor)
    case graph(Graph)
    case floats([Float])
    case ints([Int64])
    case strings([String])
    case tensors([Tensor])
    case graphs([Graph])
    case typeProto(ValueType?)
    case typeProtos([ValueType?])
    /// Sparse tensors are kept in wire form; the IR does not interpret them.
    case sparseTensor(Onnx_SparseTensorProto)
    case sparseTensors([Onnx_SparseTensorProto])

    /// The ONNX name of this attribute's kind (`INT`, `FLOATS`, `GRAPH`, ...).
    public var kindName: String {
        switch self {
        case .float: return "FLOAT"
        case .int: return "INT"
        case .string: return "STRING"
        case .tensor: return "TENSOR"
        case .graph: return "GRAPH"
        case .floats: return "FLOATS"
        case .ints: return "INTS"
        case .strings: return "STRINGS"
        case .tensors: return "TENSORS"
        case .graphs: return "GRAPHS"
        case .typeProto: return "TYPE_PROTO"
        case .typeProtos: return "TYPE_PROTOS"
        case .sparseTensor: return "SPARSE_TENSOR"
        case .sparseTensors: return "SPARSE_TENSORS"
        }
    }

    /// The subgraphs this attribute holds.
    public var subgraphs: [Graph] {
        switch self {
        case .graph(let g): return [g]
        case .graphs(let gs): return gs
        default: return []
        }
    }
}

/// A Swift type that can be read from an ``Attribute`` with ``Node/attribute(_:as:)``.
public protocol AttributeReadable {
    /// The value, or `nil` when the attribute is of another kind.
    static func read(_ attribute: Attribute) -> Self?
    /// The ONNX kind name expected, for error messages.
    static var expectedKind: String { get }
}

extension Int64: AttributeReadable {
    public static func read(_ a: Attribute) -> Int64? { if case .int(let v) = a { return v }; return nil }
    public static var expectedKind: String { "INT" }
}
extension Int: AttributeReadable {
    public static func read(_ a: Attribute) -> Int? { if case .int(let v) = a { return Int(exactly: v) }; return nil }
    public static var expectedKind: String { "INT" }
}
extension Float: AttributeReadable {
    public static func read(_ a: Attribute) -> Float? { if case .float(let v) = a { return v }; return nil }
    public static var expectedKind: String { "FLOAT" }
}
extension String: AttributeReadable {
    public static func read(_ a: Attribute) -> String? { if case .string(let v) = a { return v }; return nil }
    public static var expectedKind: String { "STRING" }
}
extension Tensor: AttributeReadable {
    public static func read(_ a: Attribute) -> Tensor? { if case .tensor(let v) = a { return v }; return nil }
    public static var expectedKind: String { "TENSOR" }
}
extension Graph: AttributeReadable {
    public static func read(_ a: Attribute) -> Self? { if case .graph(let v) = a { return v as? Self }; return nil }
    public static var expectedKind: String { "GRAPH" }
}
extension Array: AttributeReadable where Element: AttributeListElement {
    public static func read(_ a: Attribute) -> [Element]? { Element.readList(a) }
    public static var expectedKind: String { Element.listKind }
}

/// An element type of a list attribute (`INTS`, `FLOATS`, `STRINGS`).
public protocol AttributeListElement {
    static func readList(_ attribute: Attribute) -> [Self]?
    static var listKind: String { get }
}
extension Int64: AttributeListElement {
    public static func readList(_ a: Attribute) -> [Int64]? { if case .ints(let v) = a { return v }; return nil }
    public static var listKind: String { "INTS" }
}
extension Int: AttributeListElement {
    public static func readList(_ a: Attribute) -> [Int]? {
        if case .ints(let v) = a {
            let out = v.compactMap { Int(exactly: $0) }
            return out.count == v.count ? out : nil
        }
        return nil
    }
    public static var listKind: String { "INTS" }
}
extension Float: AttributeListElement {
    public static func readList(_ a: Attribute) -> [Float]? { if case .floats(let v) = a { return v }; return nil }
    public static var listKind: String { "FLOATS" }
}
extension String: AttributeListElement {
    public static func readList(_ a: Attribute) -> [String]? { if case .strings(let v) = a { return v }; return nil }
    public static var listKind: String { "STRINGS" }
}
