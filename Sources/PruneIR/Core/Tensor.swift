import Foundation
import ONNXProto

/// Where a tensor's bytes live.
///
/// Large weights are never copied at load: an external-data tensor is a slice of the memory-mapped
/// data file (`Data` that shares the mapping), and a tensor imported with ONNX's typed fields
/// (`float_data`, `int64_data`, ...) stays in that form until someone asks for its bytes.
public enum TensorStorage: Sendable {
    /// Little-endian packed bytes, exactly as ONNX's `raw_data` holds them. May be a slice of a
    /// memory-mapped file.
    case raw(Data)
    /// The typed data fields of the imported `TensorProto` (converted on demand).
    case fields(Onnx_TensorProto)
    /// String elements (`string_data`).
    case strings([Data])
}

/// Where an imported tensor's data was stored outside the model file.
public struct ExternalDataReference: Hashable, Sendable {
    /// The `location` entry: a path relative to the model's folder.
    public var location: String
    /// Byte offset in that file.
    public var offset: Int
    /// Byte length.
    public var length: Int

    public init(location: String, offset: Int, length: Int) {
        self.location = location
        self.offset = offset
        self.length = length
    }
}

/// A constant tensor: an initializer, a `Constant` node's value or a tensor attribute.
///
/// `Tensor` is a value type; its storage is shared copy-on-write, and slices of a memory-mapped
/// file stay slices until the tensor is written. Fields of `TensorProto` that the IR does not
/// model (`doc_string`, `metadata_props`, unknown fields) ride along in ``extras`` and are
/// written back unchanged.
public struct Tensor: Sendable {
    /// The tensor's name (the initializer name; may be empty for attribute tensors).
    public var name: String
    /// Element type.
    public var dtype: DType
    /// Dimensions.
    public var shape: [Int]
    /// Where the bytes are.
    public var storage: TensorStorage
    /// Where the data was stored outside the model when it was imported, if it was.
    public var external: ExternalDataReference?
    /// Everything of the original `TensorProto` that the IR does not model; data fields are empty.
    public var extras: Onnx_TensorProto

    /// Creates a tensor from packed little-endian bytes.
    ///
    /// - Precondition: `bytes.count` matches `dtype` and `shape` (a programming error otherwise;
    ///   file data is checked by the importer before it builds a tensor).
    public init(name: String = "", dtype: DType, shape: [Int], bytes: Data) {
        precondition(dtype != .string, "string tensors hold elements, not bytes")
        precondition(
            Shape.product(shape).flatMap { dtype.byteCount(elements: $0) } == bytes.count,
            "tensor '\(name)': \(bytes.count) bytes do not fit \(dtype)\(shape)")
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.storage = .raw(bytes)
        self.external = nil
        self.extras = Onnx_TensorProto()
    }

    /// Creates a string tensor.
    public init(name: String = "", strings: [String], shape: [Int]) {
        precondition(Shape.product(shape) == strings.count, "string tensor '\(name)': count mismatch")
        self.name = name
        self.dtype = .string
        self.shape = shape
        self.storage = .strings(strings.map { Data($0.utf8) })
        self.external = nil
        self.extras = Onnx_TensorProto()
    }

    /// Creates a tensor with every field given; the importer uses it after validating the data.
    init(name: String, dtype: DType, shape: [Int], storage: TensorStorage, external: ExternalDataReference?, extras: Onnx_TensorProto) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.external = external
        self.extras = extras
    }

    /// Creates a float32 tensor.
    public init(name: String = "", floats: [Float], shape: [Int]) {
        self.init(name: name, dtype: .float, shape: shape, bytes: floats.withUnsafeBytes { Data($0) })
    }

    /// Creates an int64 tensor.
    public init(name: String = "", int64s: [Int64], shape: [Int]) {
        self.init(name: name, dtype: .int64, shape: shape, bytes: int64s.withUnsafeBytes { Data($0) })
    }

    /// Creates an int32 tensor.
    public init(name: String = "", int32s: [Int32], shape: [Int]) {
        self.init(name: name, dtype: .int32, shape: shape, bytes: int32s.withUnsafeBytes { Data($0) })
    }

    /// Creates a scalar (rank 0) float32 tensor.
    public static func scalar(_ value: Float, name: String = "") -> Tensor {
        Tensor(name: name, floats: [value], shape: [])
    }

    /// Creates a scalar (rank 0) int64 tensor.
    public static func scalar(_ value: Int64, name: String = "") -> Tensor {
        Tensor(name: name, int64s: [value], shape: [])
    }

    /// Number of elements.
    public var elementCount: Int { Shape.product(shape) ?? 0 }

    /// Bytes the data occupies packed (0 for strings' fixed part).
    public var byteCount: Int {
        if case .strings(let s) = storage { return s.reduce(0) { $0 + $1.count } }
        return dtype.byteCount(elements: elementCount) ?? 0
    }

    /// The data as packed little-endian bytes (what ONNX calls `raw_data`).
    ///
    /// Zero-copy for raw storage; typed fields are converted. String tensors have no packed form
    /// and return empty data.
    public var rawBytes: Data {
        switch storage {
        case .raw(let d): return d
        case .strings: return Data()
        case .fields(let p): return TensorFieldCodec.packedBytes(of: p, dtype: dtype, count: elementCount)
        }
    }

    /// The string elements, for a string tensor.
    public var stringElements: [Data] {
        if case .strings(let s) = storage { return s }
        return []
    }

    /// The elements converted to `Float` (for float, float16, double and integer types).
    ///
    /// - Throws: ``IRError/unsupportedConversion(tensor:from:to:)`` for types that have no
    ///   numeric conversion here (strings, complex, sub-byte floats).
    public func floats() throws -> [Float] {
        let bytes = rawBytes
        let n = elementCount
        switch dtype {
        case .float: return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self).prefix(n)) }
        case .double: return bytes.withUnsafeBytes { $0.bindMemory(to: Double.self).prefix(n).map { Float($0) } }
        case .float16:
            return bytes.withUnsafeBytes { $0.bindMemory(to: UInt16.self).prefix(n).map { Float(Float16(bitPattern: $0)) } }
        case .bfloat16:
            return bytes.withUnsafeBytes { $0.bindMemory(to: UInt16.self).prefix(n).map { Float(bitPattern: UInt32($0) << 16) } }
        default:
            return try int64s().map { Float($0) }
        }
    }

    /// The elements converted to `Int64` (for integer and bool types).
    ///
    /// - Throws: ``IRError/unsupportedConversion(tensor:from:to:)`` for other types.
    public func int64s() throws -> [Int64] {
        let bytes = rawBytes
        let n = elementCount
        return try bytes.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> [Int64] in
            switch dtype {
            case .int64: return Array(b.bindMemory(to: Int64.self).prefix(n))
            case .int32: return b.bindMemory(to: Int32.self).prefix(n).map { Int64($0) }
            case .int16: return b.bindMemory(to: Int16.self).prefix(n).map { Int64($0) }
            case .int8: return b.bindMemory(to: Int8.self).prefix(n).map { Int64($0) }
            case .uint8, .bool: return b.prefix(n).map { Int64($0) }
            case .uint16: return b.bindMemory(to: UInt16.self).prefix(n).map { Int64($0) }
            case .uint32: return b.bindMemory(to: UInt32.self).prefix(n).map { Int64($0) }
            case .uint64: return b.bindMemory(to: UInt64.self).prefix(n).map { Int64(bitPattern: $0) }
            default: throw IRError.unsupportedConversion(tensor: name, from: dtype, to: .int64)
            }
        }
    }
}

extension Tensor: Equatable {
    /// Tensors are equal when name, type, shape and data are equal (storage form is ignored).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        guard a.name == b.name, a.dtype == b.dtype, a.shape == b.shape else { return false }
        if a.dtype == .string { return a.stringElements == b.stringElements }
        return a.rawBytes == b.rawBytes
    }
}

/// Conversions between ONNX's typed `TensorProto` fields and packed bytes.
enum TensorFieldCodec {
    /// Which typed field holds a dtype's elements, and how many entries `count` elements take.
    static func expectedFieldCount(dtype: DType, elements count: Int) -> (field: String, count: Int) {
        switch dtype {
        case .float: return ("float_data", count)
        case .complex64: return ("float_data", count * 2)
        case .double: return ("double_data", count)
        case .complex128: return ("double_data", count * 2)
        case .int64: return ("int64_data", count)
        case .uint32, .uint64: return ("uint64_data", count)
        case .string: return ("string_data", count)
        case .int4, .uint4, .float4e2m1: return ("int32_data", (count + 1) / 2)
        case .int2, .uint2: return ("int32_data", (count + 3) / 4)
        default: return ("int32_data", count)
        }
    }

    /// Number of entries the typed field for `dtype` holds in `p`.
    static func fieldCount(of p: Onnx_TensorProto, dtype: DType) -> Int {
        switch expectedFieldCount(dtype: dtype, elements: 0).field {
        case "float_data": return p.floatData.count
        case "double_data": return p.doubleData.count
        case "int64_data": return p.int64Data.count
        case "uint64_data": return p.uint64Data.count
        case "string_data": return p.stringData.count
        default: return p.int32Data.count
        }
    }

    /// Packs the typed field of `p` into little-endian bytes.
    static func packedBytes(of p: Onnx_TensorProto, dtype: DType, count: Int) -> Data {
        func pack<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }
        switch dtype {
        case .float, .complex64: return pack(p.floatData)
        case .double, .complex128: return pack(p.doubleData)
        case .int64: return pack(p.int64Data)
        case .uint64: return pack(p.uint64Data)
        case .uint32: return pack(p.uint64Data.map { UInt32(truncatingIfNeeded: $0) })
        case .int32: return pack(p.int32Data)
        case .int16, .uint16, .float16, .bfloat16: return pack(p.int32Data.map { UInt16(truncatingIfNeeded: $0) })
        case .string: return Data()
        case .float6e2m3, .float6e3m2:
            // One 6-bit value per int32 entry; raw_data packs them LSB first.
            var out = Data(count: dtype.byteCount(elements: p.int32Data.count) ?? 0)
            for (i, v) in p.int32Data.enumerated() {
                let bits = UInt32(truncatingIfNeeded: v) & 0x3F
                let bit = i * 6
                out[bit / 8] |= UInt8(truncatingIfNeeded: bits << (bit % 8))
                if bit % 8 > 2 { out[bit / 8 + 1] |= UInt8(truncatingIfNeeded: bits >> (8 - bit % 8)) }
            }
            return out
        default:
            // One byte per int32 entry: 8-bit types, and sub-byte types already packed per byte.
            return Data(p.int32Data.map { UInt8(truncatingIfNeeded: $0) })
        }
    }
}
