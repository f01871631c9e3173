import Foundation
import PruneIR

// Cast and CastLike between float, double, float16, bfloat16, bool and every integer type.
//
// Conversions follow NumPy: float to integer truncates toward zero (NaN gives 0 and values out
// of the 64-bit range saturate; narrower targets then wrap like C), integer to integer wraps,
// anything to bool is `x != 0`, and float to bfloat16 rounds to nearest even. Strings, the float8
// formats and the sub-byte types are not supported (the factory reports them as such).

/// An element type Cast reads or writes, with the two intermediate forms a conversion goes
/// through: a `Double` when the source is floating point, the 64-bit integer bits otherwise.
protocol CastScalar {
    /// Whether the type is floating point (the source value is read as a `Double`).
    static var castIsFloat: Bool { get }
    /// Whether an integer source is unsigned (its 64-bit pattern is zero-extended).
    static var castIsUnsigned: Bool { get }
    /// The value of a floating-point element.
    var castDouble: Double { get }
    /// The value of an integer or bool element, sign- or zero-extended to 64 bits.
    var castBits: Int64 { get }
    /// The element for a floating-point value.
    init(castDouble x: Double)
    /// The element for an integer value (`unsigned`: `bits` holds a `UInt64`).
    init(castBits bits: Int64, unsigned: Bool)
}

/// bfloat16 element storage (Swift has no bfloat16 type).
struct CastBFloat16: CastScalar {
    var bits: UInt16
    static var castIsFloat: Bool { true }
    static var castIsUnsigned: Bool { false }
    @inline(__always) var castDouble: Double { Double(unaryFloatFromBF16(bits)) }
    @inline(__always) var castBits: Int64 { 0 }
    // Via Float, as ml_dtypes converts double to bfloat16.
    @inline(__always) init(castDouble x: Double) { bits = unaryBF16FromFloat(Float(x)) }
    @inline(__always) init(castBits b: Int64, unsigned: Bool) {
        self.init(castDouble: unsigned ? Double(UInt64(bitPattern: b)) : Double(b))
    }
}

/// Bool element storage: one byte holding 0 or 1.
struct CastBool: CastScalar {
    var byte: UInt8
    static var castIsFloat: Bool { false }
    static var castIsUnsigned: Bool { true }
    @inline(__always) var castDouble: Double { byte != 0 ? 1 : 0 }
    @inline(__always) var castBits: Int64 { byte != 0 ? 1 : 0 }
    // NaN is nonzero, so it casts to true (as in NumPy).
    @inline(__always) init(castDouble x: Double) { byte = x != 0 ? 1 : 0 }
    @inline(__always) init(castBits b: Int64, unsigned: Bool) { byte = b != 0 ? 1 : 0 }
}

extension Float: CastScalar {
    static var castIsFloat: Bool { true }
    static var castIsUnsigned: Bool { false }
    @inline(__always) var castDouble: Double { Double(self) }
    @inline(__always) var castBits: Int64 { 0 }
    @inline(__always) init(castDouble x: Double) { self.init(x) }
    @inline(__always) init(castBits b: Int64, unsigned: Bool) { self = unsigned ? Float(UInt64(bitPattern: b)) : Float(b) }
}

extension Double: CastScalar {
    static var castIsFloat: Bool { true }
    static var castIsUnsigned: Bool { false }
    @inline(__always) var castDouble: Double { self }
    @inline(__always) var castBits: Int64 { 0 }
    @inline(__always) init(castDouble x: Double) { self = x }
    @inline(__always) init(castBits b: Int64, unsigned: Bool) { self = unsigned ? Double(UInt64(bitPattern: b)) : Double(b) }
}

extension Float16: CastScalar {
    static var castIsFloat: Bool { true }
    static var castIsUnsigned: Bool { false }
    @inline(__always) var castDouble: Double { Double(self) }
    @inline(__always) var castBits: Int64 { 0 }
    @inline(__always) init(castDouble x: Double) { self.init(x) }
    @inline(__always) init(castBits b: Int64, unsigned: Bool) { self = unsigned ? Float16(UInt64(bitPattern: b)) : Float16(b) }
}

/// Float to 64-bit integer: truncation toward zero, NaN to 0, saturating at the 64-bit range
/// (so that no input traps). `unsigned` allows the range of `UInt64` above `Int64.max`.
@inline(__always)
func castSaturatingBits(_ x: Double, unsigned: Bool) -> Int64 {
    if x.isNaN { return 0 }
    if x <= -9223372036854775808.0 { return Int64.min }
    if x >= 9223372036854775808.0 {
        if unsigned { return x >= 18446744073709551616.0 ? -1 : Int64(bitPattern: UInt64(x)) }
        return Int64.max
    }
    return Int64(x)
}

/// The integer types: wrap on narrowing, saturate from floating point via 64 bits.
protocol CastInteger: CastScalar, FixedWidthInteger {}

extension CastInteger {
    static var castIsFloat: Bool { false }
    static var castIsUnsigned: Bool { !isSigned }
    @inline(__always) var castDouble: Double { Double(self) }
    @inline(__always) var castBits: Int64 { Int64(truncatingIfNeeded: self) }
    @inline(__always) init(castDouble x: Double) {
        self.init(truncatingIfNeeded: castSaturatingBits(x, unsigned: !Self.isSigned && Self.bitWidth == 64))
    }
    @inline(__always) init(castBits b: Int64, unsigned: Bool) { self.init(truncatingIfNeeded: b) }
}

extension Int8: CastInteger {}
extension Int16: CastInteger {}
extension Int32: CastInteger {}
extension Int64: CastInteger {}
extension UInt8: CastInteger {}
extension UInt16: CastInteger {}
extension UInt32: CastInteger {}
extension UInt64: CastInteger {}

/// The element types Cast supports.
let castSupportedTypes: Set<DType> = [
    .float, .double, .float16, .bfloat16, .bool,
    .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64,
]

@inline(__always)
private func castLoop<S: CastScalar, D: CastScalar>(_ x: NDArray, _ out: NDArray, _ s: S.Type, _ d: D.Type, _ ctx: KernelContext) {
    let src = UnsafePointer(x.rawPointer.assumingMemoryBound(to: S.self))
    let dst = out.rawPointer.assumingMemoryBound(to: D.self)
    ctx.parallelFor(x.count, grain: unaryGrain) { r in
        for i in r {
            let v = src[i]
            // `castIsFloat` is a constant once specialized: one branch disappears.
            dst[i] = S.castIsFloat ? D(castDouble: v.castDouble) : D(castBits: v.castBits, unsigned: S.castIsUnsigned)
        }
    }
}

private func castFrom<S: CastScalar>(_ x: NDArray, _ out: NDArray, _ s: S.Type, _ ctx: KernelContext) throws {
    switch out.dtype {
    case .float: castLoop(x, out, s, Float.self, ctx)
    case .double: castLoop(x, out, s, Double.self, ctx)
    case .float16: castLoop(x, out, s, Float16.self, ctx)
    case .bfloat16: castLoop(x, out, s, CastBFloat16.self, ctx)
    case .bool: castLoop(x, out, s, CastBool.self, ctx)
    case .int8: castLoop(x, out, s, Int8.self, ctx)
    case .int16: castLoop(x, out, s, Int16.self, ctx)
    case .int32: castLoop(x, out, s, Int32.self, ctx)
    case .int64: castLoop(x, out, s, Int64.self, ctx)
    case .uint8: castLoop(x, out, s, UInt8.self, ctx)
    case .uint16: castLoop(x, out, s, UInt16.self, ctx)
    case .uint32: castLoop(x, out, s, UInt32.self, ctx)
    case .uint64: castLoop(x, out, s, UInt64.self, ctx)
    default: throw KernelError.unsupported("Cast to \(out.dtype)")
    }
}

/// `x` converted to `to` (`x` itself when it already has that type: a view, no copy).
func castArray(_ x: NDArray, to: DType, _ ctx: KernelContext) throws -> NDArray {
    if x.dtype == to { return x }
    guard castSupportedTypes.contains(to) else { throw KernelError.unsupported("Cast to \(to)") }
    let out = ctx.allocate(to, x.shape)
    // float32 <-> float16/bfloat16 directly, by the vectorized conversions (the generic path
    // goes through Double; rounding a float32 to float16 or bfloat16 is the same either way).
    if x.dtype == .float && FloatBridge.isHalf(to) {
        let s = UnsafePointer(x.pointer(as: Float.self)), d = out.pointer(as: UInt16.self)
        let bf = to == .bfloat16
        ctx.parallelFor(x.count, grain: FloatBridge.grain) { r in
            VectorKernels.narrow(s + r.lowerBound, bfloat16: bf, d + r.lowerBound, count: r.count)
        }
        return out
    }
    if FloatBridge.isHalf(x.dtype) && to == .float {
        let s = UnsafePointer(x.pointer(as: UInt16.self)), d = out.pointer(as: Float.self)
        let bf = x.dtype == .bfloat16
        ctx.parallelFor(x.count, grain: FloatBridge.grain) { r in
            VectorKernels.widen(s + r.lowerBound, bfloat16: bf, d + r.lowerBound, count: r.count)
        }
        return out
    }
    switch x.dtype {
    case .float: try castFrom(x, out, Float.self, ctx)
    case .double: try castFrom(x, out, Double.self, ctx)
    case .float16: try castFrom(x, out, Float16.self, ctx)
    case .bfloat16: try castFrom(x, out, CastBFloat16.self, ctx)
    case .bool: try castFrom(x, out, CastBool.self, ctx)
    case .int8: try castFrom(x, out, Int8.self, ctx)
    case .int16: try castFrom(x, out, Int16.self, ctx)
    case .int32: try castFrom(x, out, Int32.self, ctx)
    case .int64: try castFrom(x, out, Int64.self, ctx)
    case .uint8: try castFrom(x, out, UInt8.self, ctx)
    case .uint16: try castFrom(x, out, UInt16.self, ctx)
    case .uint32: try castFrom(x, out, UInt32.self, ctx)
    case .uint64: try castFrom(x, out, UInt64.self, ctx)
    default: throw KernelError.unsupported("Cast from \(x.dtype)")
    }
    return out
}

/// Throws `unsupported` when a known element type is outside ``castSupportedTypes``.
private func castCheck(_ t: DType?, _ op: String, _ role: String) throws {
    if let t, !castSupportedTypes.contains(t) {
        throw KernelError.unsupported("\(op) \(role) element type \(t)")
    }
}

/// Cast's `to`: an element type number, or before opset 6 a type name such as "FLOAT".
private func castTarget(_ info: KernelBuildInfo) throws -> DType {
    switch info.node[attribute: "to"] {
    case .int(let v)?:
        guard let t = DType(onnx: Int32(truncatingIfNeeded: v)) else { throw KernelError("Cast: unknown target type \(v)") }
        return t
    case .string(let name)?:
        guard let t = DType.allCases.first(where: { $0.description.uppercased() == name.uppercased() }) else {
            throw KernelError("Cast: unknown target type '\(name)'")
        }
        return t
    case nil:
        throw KernelError("Cast needs the 'to' attribute")
    default:
        throw KernelError("Cast: 'to' must be an int (or a string before opset 6)")
    }
}

func registerCastKernels(_ r: inout KernelRegistry) {
    // `saturate` (opset 19) and `round_mode` (opset 25) only affect float8 targets, which are
    // not supported, so every version shares one kernel.
    r.register("Cast", since: 1) { info in
        let to = try castTarget(info)
        try castCheck(to, "Cast", "target")
        try castCheck(info.inputType(0), "Cast", "input")
        return ClosureKernel { inputs, ctx in [try castArray(try inputs.required(0), to: to, ctx)] }
    }
    r.register("CastLike", since: 15) { info in
        try castCheck(info.inputType(0), "CastLike", "input")
        try castCheck(info.inputType(1), "CastLike", "target")
        return ClosureKernel { inputs, ctx in
            [try castArray(try inputs.required(0), to: try inputs.required(1).dtype, ctx)]
        }
    }
}

// MARK: Gradients

/// VJP of Cast and CastLike: between floating-point types the cast is the identity on values,
/// so the cotangent is cast back to the input's type. A cast to or from a non-float type has no
/// gradient (`nil`); CastLike's second input only supplies a type.
func registerCastGradients(_ r: inout GradientRegistry) {
    r.register(["Cast", "CastLike"]) { c, gs in
        guard c.needs(0), let g = gs[0] else { return [nil, nil] }
        let x = try c.input(0), y = try c.output(0)
        guard unaryFloatTypes.contains(y.dtype), GradientMath.isDifferentiable(x.dtype) else { return [nil, nil] }
        return [try castArray(g, to: x.dtype, c.kernel), nil]
    }
}
