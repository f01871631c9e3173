import Foundation
import PruneIR

/// A dense, row-major n-dimensional array: the interpreter's runtime value.
///
/// Arrays are cheap to copy (the elements live in a shared ``Storage``). Several arrays may share
/// one storage (`Reshape`, `Squeeze`, `Identity` are views), so kernels write only to arrays they
/// allocated themselves.
public struct NDArray: @unchecked Sendable {
    /// Element type.
    public let dtype: DType
    /// Dimensions (empty for a scalar).
    public let shape: [Int]
    /// Number of elements (product of ``shape``; 1 for a scalar).
    public let count: Int
    /// Where the elements live.
    public let storage: Storage
    /// Byte offset of the first element in ``storage``.
    public let byteOffset: Int

    /// An array over existing storage.
    public init(dtype: DType, shape: [Int], storage: Storage, byteOffset: Int = 0) {
        self.dtype = dtype
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.storage = storage
        self.byteOffset = byteOffset
    }

    /// A new zero-filled array with its own storage.
    public init(zeros dtype: DType, shape: [Int]) {
        let n = shape.reduce(1, *)
        let bytes = NDArray.byteCount(dtype, n)
        let s = Storage(allocating: bytes)
        memset(s.pointer, 0, max(bytes, 1))
        self.init(dtype: dtype, shape: shape, storage: s)
    }

    /// A new array holding copies of `values`.
    public init<T: TensorElement>(_ values: [T], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.init(zeros: T.dtype, shape: shape)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { rawPointer.copyMemory(from: base, byteCount: src.count * MemoryLayout<T>.stride) }
        }
    }

    /// A rank-0 array holding `value`.
    public init<T: TensorElement>(scalar value: T) { self.init([value], shape: []) }

    /// Bytes `count` elements of `dtype` take in memory (booleans take one byte each).
    public static func byteCount(_ dtype: DType, _ count: Int) -> Int {
        dtype == .bool ? count : (dtype.bitWidth * count + 7) / 8
    }

    /// Size of the elements in bytes.
    public var byteCount: Int { NDArray.byteCount(dtype, count) }

    /// Bytes an array of `shape` takes, checked: every dimension is at least 0, and the size
    /// neither overflows nor exceeds the machine's memory (a shape computed from a model's
    /// constants or inputs is untrusted; an allocation that cannot succeed must not trap).
    ///
    /// - Throws: ``KernelError`` naming the shape.
    public static func checkedByteCount(_ dtype: DType, _ shape: [Int]) throws -> Int {
        if let d = shape.first(where: { $0 < 0 }) { throw KernelError("output shape \(shape) has a negative dimension \(d)") }
        var n = 1
        var overflow = false
        for d in shape where !overflow { (n, overflow) = n.multipliedReportingOverflow(by: d) }
        let bits = overflow ? (partialValue: 0, overflow: true) : n.multipliedReportingOverflow(by: max(8, dtype.bitWidth))
        let limit = ProcessInfo.processInfo.physicalMemory
        guard !bits.overflow, UInt64(bits.partialValue / 8) <= limit else {
            throw KernelError("output shape \(shape) needs more memory than this machine has (\(limit >> 20) MiB)")
        }
        return byteCount(dtype, n)
    }

    /// Rank (number of dimensions).
    public var rank: Int { shape.count }

    /// Pointer to the first element.
    public var rawPointer: UnsafeMutableRawPointer { storage.pointer + byteOffset }

    /// Typed pointer to the first element. `T` must match ``dtype``'s layout.
    @inline(__always)
    public func pointer<T>(as type: T.Type) -> UnsafeMutablePointer<T> {
        rawPointer.assumingMemoryBound(to: T.self)
    }

    /// Typed buffer over the elements. `T` must match ``dtype``'s layout.
    @inline(__always)
    public func buffer<T>(as type: T.Type) -> UnsafeMutableBufferPointer<T> {
        UnsafeMutableBufferPointer(start: pointer(as: T.self), count: count)
    }

    /// The same elements with another shape (no copy). The element count must match.
    public func reshaped(_ newShape: [Int]) -> NDArray {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) -> \(newShape)")
        return NDArray(dtype: dtype, shape: newShape, storage: storage, byteOffset: byteOffset)
    }

    /// A copy of the elements as a Swift array. `T` must match ``dtype``.
    public func scalars<T: TensorElement>(as type: T.Type = T.self) -> [T] {
        precondition(T.dtype == dtype || (T.self == Bool.self && dtype == .bool), "reading \(dtype) as \(T.self)")
        return Array(buffer(as: T.self))
    }

    /// The elements converted to `Double` (numeric and bool types).
    public func doubles() -> [Double] {
        (0..<count).map { element(at: $0) }
    }

    /// One element converted to `Double`.
    public func element(at i: Int) -> Double {
        let p = rawPointer
        switch dtype {
        case .float: return Double(p.assumingMemoryBound(to: Float.self)[i])
        case .double: return p.assumingMemoryBound(to: Double.self)[i]
        case .float16: return Double(p.assumingMemoryBound(to: Float16.self)[i])
        case .bfloat16: return Double(Float(bitPattern: UInt32(p.assumingMemoryBound(to: UInt16.self)[i]) << 16))
        case .int8: return Double(p.assumingMemoryBound(to: Int8.self)[i])
        case .int16: return Double(p.assumingMemoryBound(to: Int16.self)[i])
        case .int32: return Double(p.assumingMemoryBound(to: Int32.self)[i])
        case .int64: return Double(p.assumingMemoryBound(to: Int64.self)[i])
        case .uint8, .bool: return Double(p.assumingMemoryBound(to: UInt8.self)[i])
        case .uint16: return Double(p.assumingMemoryBound(to: UInt16.self)[i])
        case .uint32: return Double(p.assumingMemoryBound(to: UInt32.self)[i])
        case .uint64: return Double(p.assumingMemoryBound(to: UInt64.self)[i])
        default: return .nan
        }
    }

    /// The elements of an integer (or bool) array as `Int`s: for shape and index inputs.
    public func ints() -> [Int] {
        let p = rawPointer
        switch dtype {
        case .int64: return (0..<count).map { Int(p.assumingMemoryBound(to: Int64.self)[$0]) }
        case .int32: return (0..<count).map { Int(p.assumingMemoryBound(to: Int32.self)[$0]) }
        default: return (0..<count).map { Int(element(at: $0)) }
        }
    }

    /// A deep copy with its own storage.
    public func copy() -> NDArray {
        let out = NDArray(uninitialized: dtype, shape: shape)
        out.rawPointer.copyMemory(from: rawPointer, byteCount: byteCount)
        return out
    }

    /// A new array with its own storage, elements uninitialized.
    public init(uninitialized dtype: DType, shape: [Int]) {
        let n = shape.reduce(1, *)
        self.init(dtype: dtype, shape: shape, storage: Storage(allocating: NDArray.byteCount(dtype, n)))
    }
}

extension NDArray {
    /// An array holding an IR tensor's elements.
    ///
    /// Raw data that is suitably aligned is borrowed (a weight in a mapped file is not copied);
    /// anything else is copied. String, complex and sub-byte tensors are not supported.
    public init(tensor: Tensor) throws {
        guard NDArray.supports(tensor.dtype) else {
            throw RuntimeError.unsupportedType(what: "tensor '\(tensor.name)'", dtype: tensor.dtype)
        }
        let bytes = tensor.rawBytes
        let n = tensor.elementCount
        let need = NDArray.byteCount(tensor.dtype, n)
        guard bytes.count >= need else {
            throw RuntimeError.invalidData("tensor '\(tensor.name)' holds \(bytes.count) bytes, needs \(need)")
        }
        let align = max(1, tensor.dtype.bitWidth / 8)
        let borrowed: NDArray? = bytes.withUnsafeBytes { raw -> NDArray? in
            guard let base = raw.baseAddress, Int(bitPattern: base) % align == 0, need >= 4096 else { return nil }
            // Large mapped or heap Data does not move while referenced; the storage keeps it alive.
            let box = DataBox(bytes)
            return NDArray(dtype: tensor.dtype, shape: tensor.shape,
                           storage: Storage(borrowing: UnsafeMutableRawPointer(mutating: base), byteCount: need, owner: box))
        }
        if let borrowed { self = borrowed; return }
        self.init(uninitialized: tensor.dtype, shape: tensor.shape)
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress, need > 0 { rawPointer.copyMemory(from: base, byteCount: need) }
        }
    }

    /// The array as an IR tensor (a copy of the elements).
    public func tensor(name: String = "") -> Tensor {
        Tensor(name: name, dtype: dtype, shape: shape, bytes: Data(bytes: rawPointer, count: byteCount))
    }

    /// Whether the runtime can hold elements of `dtype`.
    public static func supports(_ dtype: DType) -> Bool {
        switch dtype {
        case .float, .double, .float16, .bfloat16, .int8, .int16, .int32, .int64,
             .uint8, .uint16, .uint32, .uint64, .bool:
            return true
        default:
            return false
        }
    }
}

private final class DataBox {
    let data: Data
    init(_ data: Data) { self.data = data }
}

/// A Swift type that is the in-memory form of an ONNX element type.
public protocol TensorElement {
    /// The ONNX element type.
    static var dtype: DType { get }
}

extension Float: TensorElement { public static var dtype: DType { .float } }
extension Double: TensorElement { public static var dtype: DType { .double } }
extension Float16: TensorElement { public static var dtype: DType { .float16 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension UInt16: TensorElement { public static var dtype: DType { .uint16 } }
extension UInt32: TensorElement { public static var dtype: DType { .uint32 } }
extension UInt64: TensorElement { public static var dtype: DType { .uint64 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }
