/// An ONNX tensor element type.
///
/// Raw values are the `TensorProto.DataType` numbers of onnx.proto, so a `DType` converts to and
/// from the wire without a table. Every element type of onnx 1.23 is covered, including the
/// sub-byte types (`int4`, `uint4`, `float4e2m1`, `int2`, `uint2`), which pack several elements
/// per byte.
public enum DType: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case float = 1
    case uint8 = 2
    case int8 = 3
    case uint16 = 4
    case int16 = 5
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case float16 = 10
    case double = 11
    case uint32 = 12
    case uint64 = 13
    case complex64 = 14
    case complex128 = 15
    case bfloat16 = 16
    case float8e4m3fn = 17
    case float8e4m3fnuz = 18
    case float8e5m2 = 19
    case float8e5m2fnuz = 20
    case uint4 = 21
    case int4 = 22
    case float4e2m1 = 23
    case float8e8m0 = 24
    case uint2 = 25
    case int2 = 26
    case float6e2m3 = 27
    case float6e3m2 = 28

    /// The element type for an ONNX `data_type`/`elem_type` number, or `nil` for 0 (undefined)
    /// and numbers this build does not know.
    public init?(onnx value: Int32) {
        self.init(rawValue: value)
    }

    /// Bits one element occupies in `raw_data`; 0 for `string`, whose elements have no fixed size.
    public var bitWidth: Int {
        switch self {
        case .bool, .int8, .uint8, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0:
            return 8
        case .int16, .uint16, .float16, .bfloat16: return 16
        case .int32, .uint32, .float: return 32
        case .int64, .uint64, .double, .complex64: return 64
        case .complex128: return 128
        case .int4, .uint4, .float4e2m1: return 4
        case .int2, .uint2: return 2
        case .float6e2m3, .float6e3m2: return 6
        case .string: return 0
        }
    }

    /// Bytes needed to store `count` elements packed as ONNX stores them in `raw_data`
    /// (sub-byte types round up to whole bytes), or `nil` on overflow.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0 else { return nil }
        let (bits, overflow) = count.multipliedReportingOverflow(by: bitWidth)
        guard !overflow else { return nil }
        return bits / 8 + (bits % 8 == 0 ? 0 : 1)
    }

    /// Whether values of this type are floating point (including the 8-, 6- and 4-bit formats).
    public var isFloatingPoint: Bool {
        switch self {
        case .float, .double, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2,
            .float8e5m2fnuz, .float8e8m0, .float4e2m1, .float6e2m3, .float6e3m2:
            return true
        default: return false
        }
    }

    /// The lower-case name ONNX uses in text (`float`, `int64`, `float8e4m3fn`, ...).
    public var description: String {
        switch self {
        case .float: return "float"
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .int32: return "int32"
        case .int64: return "int64"
        case .string: return "string"
        case .bool: return "bool"
        case .float16: return "float16"
        case .double: return "double"
        case .uint32: return "uint32"
        case .uint64: return "uint64"
        case .complex64: return "complex64"
        case .complex128: return "complex128"
        case .bfloat16: return "bfloat16"
        case .float8e4m3fn: return "float8e4m3fn"
        case .float8e4m3fnuz: return "float8e4m3fnuz"
        case .float8e5m2: return "float8e5m2"
        case .float8e5m2fnuz: return "float8e5m2fnuz"
        case .uint4: return "uint4"
        case .int4: return "int4"
        case .float4e2m1: return "float4e2m1"
        case .float8e8m0: return "float8e8m0"
        case .uint2: return "uint2"
        case .int2: return "int2"
        case .float6e2m3: return "float6e2m3"
        case .float6e3m2: return "float6e3m2"
        }
    }
}
