import Foundation
import PruneIR

// Elementwise unary math: Abs, Neg, Exp, Log, Sqrt, Reciprocal, trigonometric and hyperbolic
// functions, Floor, Ceil, Round, Sign, Erf, IsNaN, IsInf, Not, BitwiseNot.
//
// Every op is a small struct whose `apply` is generic over the element type; the kernel
// switches on the dtype once per call and runs a loop specialized for (op, type), so each loop
// is a tight, inlined (and where possible vectorized) pass over typed pointers. float16 and
// bfloat16 are widened to Float in blocks, computed like float, and rounded once per element.

/// A Swift floating-point type with the libm functions the unary kernels need (Float, Double).
protocol UnaryMathFloat: BinaryFloatingPoint {
    static func mExp(_ x: Self) -> Self
    static func mExpm1(_ x: Self) -> Self
    static func mLog(_ x: Self) -> Self
    static func mLog1p(_ x: Self) -> Self
    static func mSin(_ x: Self) -> Self
    static func mCos(_ x: Self) -> Self
    static func mTan(_ x: Self) -> Self
    static func mAsin(_ x: Self) -> Self
    static func mAcos(_ x: Self) -> Self
    static func mAtan(_ x: Self) -> Self
    static func mSinh(_ x: Self) -> Self
    static func mCosh(_ x: Self) -> Self
    static func mTanh(_ x: Self) -> Self
    static func mAsinh(_ x: Self) -> Self
    static func mAcosh(_ x: Self) -> Self
    static func mAtanh(_ x: Self) -> Self
    static func mErf(_ x: Self) -> Self
}

extension Float: UnaryMathFloat {
    @inline(__always) static func mExp(_ x: Float) -> Float { expf(x) }
    @inline(__always) static func mExpm1(_ x: Float) -> Float { expm1f(x) }
    @inline(__always) static func mLog(_ x: Float) -> Float { logf(x) }
    @inline(__always) static func mLog1p(_ x: Float) -> Float { log1pf(x) }
    @inline(__always) static func mSin(_ x: Float) -> Float { sinf(x) }
    @inline(__always) static func mCos(_ x: Float) -> Float { cosf(x) }
    @inline(__always) static func mTan(_ x: Float) -> Float { tanf(x) }
    @inline(__always) static func mAsin(_ x: Float) -> Float { asinf(x) }
    @inline(__always) static func mAcos(_ x: Float) -> Float { acosf(x) }
    @inline(__always) static func mAtan(_ x: Float) -> Float { atanf(x) }
    @inline(__always) static func mSinh(_ x: Float) -> Float { sinhf(x) }
    @inline(__always) static func mCosh(_ x: Float) -> Float { coshf(x) }
    @inline(__always) static func mTanh(_ x: Float) -> Float { tanhf(x) }
    @inline(__always) static func mAsinh(_ x: Float) -> Float { asinhf(x) }
    @inline(__always) static func mAcosh(_ x: Float) -> Float { acoshf(x) }
    @inline(__always) static func mAtanh(_ x: Float) -> Float { atanhf(x) }
    @inline(__always) static func mErf(_ x: Float) -> Float { erff(x) }
}

extension Double: UnaryMathFloat {
    @inline(__always) static func mExp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) static func mExpm1(_ x: Double) -> Double { Foundation.expm1(x) }
    @inline(__always) static func mLog(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) static func mLog1p(_ x: Double) -> Double { Foundation.log1p(x) }
    @inline(__always) static func mSin(_ x: Double) -> Double { Foundation.sin(x) }
    @inline(__always) static func mCos(_ x: Double) -> Double { Foundation.cos(x) }
    @inline(__always) static func mTan(_ x: Double) -> Double { Foundation.tan(x) }
    @inline(__always) static func mAsin(_ x: Double) -> Double { Foundation.asin(x) }
    @inline(__always) static func mAcos(_ x: Double) -> Double { Foundation.acos(x) }
    @inline(__always) static func mAtan(_ x: Double) -> Double { Foundation.atan(x) }
    @inline(__always) static func mSinh(_ x: Double) -> Double { Foundation.sinh(x) }
    @inline(__always) static func mCosh(_ x: Double) -> Double { Foundation.cosh(x) }
    @inline(__always) static func mTanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) static func mAsinh(_ x: Double) -> Double { Foundation.asinh(x) }
    @inline(__always) static func mAcosh(_ x: Double) -> Double { Foundation.acosh(x) }
    @inline(__always) static func mAtanh(_ x: Double) -> Double { Foundation.atanh(x) }
    @inline(__always) static func mErf(_ x: Double) -> Double { Foundation.erf(x) }
}

/// bfloat16 bits (the upper half of a float32) to Float.
@inline(__always)
func unaryFloatFromBF16(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Float to bfloat16 bits, rounding to nearest even (NaN stays a quiet NaN).
@inline(__always)
func unaryBF16FromFloat(_ f: Float) -> UInt16 {
    let b = f.bitPattern
    if f.isNaN { return UInt16(truncatingIfNeeded: b >> 16) | 0x0040 }
    let rounded = b &+ (0x7FFF &+ ((b >> 16) & 1))
    return UInt16(truncatingIfNeeded: rounded >> 16)
}

/// Elements per parallel chunk for elementwise loops: small arrays stay on one thread.
let unaryGrain = 1 << 14

/// Elements per float32 block when a float16/bfloat16 map is computed in float32.
let unaryHalfBlock = 1024

/// The floating-point element types the float kernels accept.
let unaryFloatTypes: Set<DType> = [.float, .double, .float16, .bfloat16]
/// The signed integer element types.
let unarySignedTypes: Set<DType> = [.int8, .int16, .int32, .int64]
/// The unsigned integer element types.
let unaryUnsignedTypes: Set<DType> = [.uint8, .uint16, .uint32, .uint64]

/// Throws `unsupported` at build time when input `i`'s element type is known and not in `allowed`.
func unaryRequireType(_ info: KernelBuildInfo, _ i: Int, _ allowed: Set<DType>) throws {
    if let t = info.inputType(i), !allowed.contains(t) {
        throw KernelError.unsupported("\(info.node.opType.name) on element type \(t)")
    }
}

// MARK: - Generic map kernels

/// A floating-point elementwise function (computed in Float for float16/bfloat16).
protocol FloatUnaryOp {
    func apply<T: UnaryMathFloat>(_ x: T) -> T
    /// `d[i] = op(s[i])` for `n` contiguous floats by a vectorized routine; false when the op
    /// has none (then `apply` runs per element).
    func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool
}

extension FloatUnaryOp {
    @inline(__always)
    func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool { false }
}

/// A function that is also defined on integers (Abs, Neg, Sign, Relu, ...).
protocol NumericUnaryOp: FloatUnaryOp {
    func applyInt<T: FixedWidthInteger>(_ x: T) -> T
}

/// `dst[i] = op(src[i])` for a floating-point array, dispatched once on the dtype.
func unaryMapFloat<Op: FloatUnaryOp>(_ op: Op, _ x: NDArray, _ ctx: KernelContext) throws -> NDArray {
    let out = ctx.allocate(x.dtype, x.shape)
    let n = x.count
    switch x.dtype {
    case .float:
        let s = x.pointer(as: Float.self), d = out.pointer(as: Float.self)
        ctx.parallelFor(n, grain: unaryGrain) { r in
            if op.mapFloat32(s + r.lowerBound, d + r.lowerBound, r.count) { return }
            for i in r { d[i] = op.apply(s[i]) }
        }
    case .double:
        let s = x.pointer(as: Double.self), d = out.pointer(as: Double.self)
        ctx.parallelFor(n, grain: unaryGrain) { r in for i in r { d[i] = op.apply(s[i]) } }
    case .float16, .bfloat16:
        // Blocks widened into a float32 buffer, computed like float, rounded back once.
        let s = UnsafePointer(x.pointer(as: UInt16.self)), d = out.pointer(as: UInt16.self)
        let bf = x.dtype == .bfloat16
        ctx.parallelFor(n, grain: unaryGrain) { r in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: unaryHalfBlock) { buf in
                let f = buf.baseAddress!
                var i = r.lowerBound
                while i < r.upperBound {
                    let c = min(unaryHalfBlock, r.upperBound - i)
                    VectorKernels.widen(s + i, bfloat16: bf, f, count: c)
                    if !op.mapFloat32(f, f, c) {
                        for j in 0..<c { f[j] = op.apply(f[j]) }
                    }
                    VectorKernels.narrow(f, bfloat16: bf, d + i, count: c)
                    i += c
                }
            }
        }
    default:
        throw KernelError("element type \(x.dtype) is not floating point")
    }
    return out
}

@inline(__always)
private func unaryIntLoop<Op: NumericUnaryOp, T: FixedWidthInteger>(
    _ op: Op, _ x: NDArray, _ out: NDArray, _ type: T.Type, _ ctx: KernelContext
) {
    let s = x.pointer(as: T.self), d = out.pointer(as: T.self)
    ctx.parallelFor(x.count, grain: unaryGrain) { r in for i in r { d[i] = op.applyInt(s[i]) } }
}

/// `dst[i] = op(src[i])` for a numeric array (floating point or integer).
func unaryMapNumeric<Op: NumericUnaryOp>(_ op: Op, _ x: NDArray, _ ctx: KernelContext) throws -> NDArray {
    if unaryFloatTypes.contains(x.dtype) { return try unaryMapFloat(op, x, ctx) }
    let out = ctx.allocate(x.dtype, x.shape)
    switch x.dtype {
    case .int8: unaryIntLoop(op, x, out, Int8.self, ctx)
    case .int16: unaryIntLoop(op, x, out, Int16.self, ctx)
    case .int32: unaryIntLoop(op, x, out, Int32.self, ctx)
    case .int64: unaryIntLoop(op, x, out, Int64.self, ctx)
    case .uint8: unaryIntLoop(op, x, out, UInt8.self, ctx)
    case .uint16: unaryIntLoop(op, x, out, UInt16.self, ctx)
    case .uint32: unaryIntLoop(op, x, out, UInt32.self, ctx)
    case .uint64: unaryIntLoop(op, x, out, UInt64.self, ctx)
    default: throw KernelError("element type \(x.dtype) is not numeric")
    }
    return out
}

/// A kernel applying a floating-point elementwise op.
///
/// A closure made in a function specialized for `Op` (not a generic class, whose `run` would be
/// called through the unspecialized vtable entry and do every element through witness tables).
func floatUnaryKernel<Op: FloatUnaryOp>(_ op: Op) -> any Kernel {
    ClosureKernel { inputs, ctx in [try unaryMapFloat(op, try inputs.required(0), ctx)] }
}

/// A kernel applying a numeric elementwise op (specialized as ``floatUnaryKernel(_:)``).
func numericUnaryKernel<Op: NumericUnaryOp>(_ op: Op) -> any Kernel {
    ClosureKernel { inputs, ctx in [try unaryMapNumeric(op, try inputs.required(0), ctx)] }
}

extension KernelRegistry {
    /// Registers a floating-point-only elementwise op.
    mutating func registerFloatUnary<Op: FloatUnaryOp>(_ name: String, since: Int, _ make: @escaping (KernelBuildInfo) throws -> Op) {
        register(name, since: since) { info in
            try unaryRequireType(info, 0, unaryFloatTypes)
            return floatUnaryKernel(try make(info))
        }
    }

    /// Registers a numeric elementwise op; `types` are the integer types it accepts besides floats.
    mutating func registerNumericUnary<Op: NumericUnaryOp>(
        _ name: String, since: Int, integers: Set<DType>, _ make: @escaping (KernelBuildInfo) throws -> Op
    ) {
        register(name, since: since) { info in
            try unaryRequireType(info, 0, unaryFloatTypes.union(integers))
            return numericUnaryKernel(try make(info))
        }
    }
}

// MARK: - Ops

/// The elementwise math functions, in a namespace so that their names cannot clash with other kernel files.
private enum UnaryFn {
    struct AbsOp: NumericUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { Swift.abs(x) }
        // Wrapping, like NumPy: abs(Int8.min) is Int8.min.
        @inline(__always) func applyInt<T: FixedWidthInteger>(_ x: T) -> T { x < 0 ? 0 &- x : x }
    }

    struct NegOp: NumericUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { -x }
        @inline(__always) func applyInt<T: FixedWidthInteger>(_ x: T) -> T { 0 &- x }
    }

    struct SignOp: NumericUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x > 0 ? 1 : (x < 0 ? -1 : (x == 0 ? 0 : x)) }
        @inline(__always) func applyInt<T: FixedWidthInteger>(_ x: T) -> T { x > 0 ? 1 : (x < 0 ? 0 &- 1 : 0) }
    }

    // One struct per libm function, so that each gets its own specialized loop.
    struct ExpOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mExp(x) }
        // About 1 ulp; results under 2.5e-38 (x < -86.6) flush to 0.
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            VectorKernels.apply(.exp, s, d, count: n)
            return true
        }
    }
    struct LogOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mLog(x) } }
    struct SqrtOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x.squareRoot() } }
    struct ReciprocalOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { 1 / x } }
    struct SinOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mSin(x) } }
    struct CosOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mCos(x) } }
    struct TanOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mTan(x) } }
    struct AsinOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mAsin(x) } }
    struct AcosOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mAcos(x) } }
    struct AtanOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mAtan(x) } }
    struct SinhOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mSinh(x) } }
    struct CoshOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mCosh(x) } }
    struct AsinhOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mAsinh(x) } }
    struct AcoshOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mAcosh(x) } }
    struct AtanhOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mAtanh(x) } }
    struct FloorOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x.rounded(.down) } }
    struct CeilOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x.rounded(.up) } }
    /// Round: halves go to the even neighbour.
    struct RoundOp: FloatUnaryOp { @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x.rounded(.toNearestOrEven) } }
    struct ErfOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mErf(x) }
        // Rational approximation, within about 7 ulp (4.5e-7 absolute).
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            VectorKernels.apply(.erf, s, d, count: n)
            return true
        }
    }
}

/// IsNaN / IsInf: floating point in, bool out.
private final class UnaryFloatPredicateKernel: Kernel {
    let predicate: (Double) -> Bool
    let floatPredicate: (Float) -> Bool
    init(_ f: @escaping (Float) -> Bool, _ d: @escaping (Double) -> Bool) {
        floatPredicate = f
        predicate = d
    }

    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let out = context.allocate(.bool, x.shape)
        let d = out.pointer(as: UInt8.self)
        let n = x.count
        // Cheap predicates: the closure call per element is fine (not a hot op in models).
        switch x.dtype {
        case .float:
            let s = x.pointer(as: Float.self)
            for i in 0..<n { d[i] = floatPredicate(s[i]) ? 1 : 0 }
        case .double:
            let s = x.pointer(as: Double.self)
            for i in 0..<n { d[i] = predicate(s[i]) ? 1 : 0 }
        case .float16:
            let s = x.pointer(as: Float16.self)
            for i in 0..<n { d[i] = floatPredicate(Float(s[i])) ? 1 : 0 }
        case .bfloat16:
            let s = x.pointer(as: UInt16.self)
            for i in 0..<n { d[i] = floatPredicate(unaryFloatFromBF16(s[i])) ? 1 : 0 }
        default:
            throw KernelError("element type \(x.dtype) is not floating point")
        }
        return [out]
    }
}

private func bitwiseNot<T: FixedWidthInteger>(_ x: NDArray, _ out: NDArray, _ type: T.Type, _ ctx: KernelContext) {
    let s = x.pointer(as: T.self), d = out.pointer(as: T.self)
    ctx.parallelFor(x.count, grain: unaryGrain) { r in for i in r { d[i] = ~s[i] } }
}

// MARK: - Registration

func registerUnaryKernels(_ r: inout KernelRegistry) {
    let allInts = unarySignedTypes.union(unaryUnsignedTypes)
    r.registerNumericUnary("Abs", since: 1, integers: allInts) { _ in UnaryFn.AbsOp() }
    r.registerNumericUnary("Neg", since: 1, integers: unarySignedTypes) { _ in UnaryFn.NegOp() }
    r.registerNumericUnary("Sign", since: 9, integers: allInts) { _ in UnaryFn.SignOp() }

    r.registerFloatUnary("Exp", since: 1) { _ in UnaryFn.ExpOp() }
    r.registerFloatUnary("Log", since: 1) { _ in UnaryFn.LogOp() }
    r.registerFloatUnary("Sqrt", since: 1) { _ in UnaryFn.SqrtOp() }
    r.registerFloatUnary("Reciprocal", since: 1) { _ in UnaryFn.ReciprocalOp() }
    r.registerFloatUnary("Sin", since: 7) { _ in UnaryFn.SinOp() }
    r.registerFloatUnary("Cos", since: 7) { _ in UnaryFn.CosOp() }
    r.registerFloatUnary("Tan", since: 7) { _ in UnaryFn.TanOp() }
    r.registerFloatUnary("Asin", since: 7) { _ in UnaryFn.AsinOp() }
    r.registerFloatUnary("Acos", since: 7) { _ in UnaryFn.AcosOp() }
    r.registerFloatUnary("Atan", since: 7) { _ in UnaryFn.AtanOp() }
    r.registerFloatUnary("Sinh", since: 9) { _ in UnaryFn.SinhOp() }
    r.registerFloatUnary("Cosh", since: 9) { _ in UnaryFn.CoshOp() }
    r.registerFloatUnary("Asinh", since: 9) { _ in UnaryFn.AsinhOp() }
    r.registerFloatUnary("Acosh", since: 9) { _ in UnaryFn.AcoshOp() }
    r.registerFloatUnary("Atanh", since: 9) { _ in UnaryFn.AtanhOp() }
    r.registerFloatUnary("Floor", since: 1) { _ in UnaryFn.FloorOp() }
    r.registerFloatUnary("Ceil", since: 1) { _ in UnaryFn.CeilOp() }
    r.registerFloatUnary("Round", since: 11) { _ in UnaryFn.RoundOp() }
    r.registerFloatUnary("Erf", since: 9) { _ in UnaryFn.ErfOp() }

    r.register("IsNaN", since: 9) { info in
        try unaryRequireType(info, 0, unaryFloatTypes)
        return UnaryFloatPredicateKernel({ $0.isNaN }, { $0.isNaN })
    }
    r.register("IsInf", since: 10) { info in
        try unaryRequireType(info, 0, unaryFloatTypes)
        let neg = try info.attribute("detect_negative", default: 1) != 0
        let pos = try info.attribute("detect_positive", default: 1) != 0
        return UnaryFloatPredicateKernel(
            { $0.isInfinite && ($0 > 0 ? pos : neg) },
            { $0.isInfinite && ($0 > 0 ? pos : neg) })
    }

    r.register("Not", since: 1) { info in
        try unaryRequireType(info, 0, [.bool])
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            guard x.dtype == .bool else { throw KernelError("Not needs a bool input, got \(x.dtype)") }
            let out = ctx.allocate(.bool, x.shape)
            let s = x.pointer(as: UInt8.self), d = out.pointer(as: UInt8.self)
            // Booleans are stored as 0 or 1.
            for i in 0..<x.count { d[i] = s[i] ^ 1 }
            return [out]
        }
    }

    r.register("BitwiseNot", since: 18) { info in
        try unaryRequireType(info, 0, allInts)
        return ClosureKernel { inputs, ctx in
            let x = try inputs.required(0)
            let out = ctx.allocate(x.dtype, x.shape)
            switch x.dtype {
            case .int8: bitwiseNot(x, out, Int8.self, ctx)
            case .int16: bitwiseNot(x, out, Int16.self, ctx)
            case .int32: bitwiseNot(x, out, Int32.self, ctx)
            case .int64: bitwiseNot(x, out, Int64.self, ctx)
            case .uint8: bitwiseNot(x, out, UInt8.self, ctx)
            case .uint16: bitwiseNot(x, out, UInt16.self, ctx)
            case .uint32: bitwiseNot(x, out, UInt32.self, ctx)
            case .uint64: bitwiseNot(x, out, UInt64.self, ctx)
            default: throw KernelError("BitwiseNot needs an integer input, got \(x.dtype)")
            }
            return [out]
        }
    }
}

// MARK: Gradients

/// A derivative rule evaluated per element from up to four operands: usually the cotangent, the
/// forward input, the forward output, and one more (a statistic broadcast from a reduction).
/// Operands a caller does not pass read as the first one.
protocol ElementwiseGradient {
    func apply<T: UnaryMathFloat>(_ a: T, _ b: T, _ c: T, _ d: T) -> T
}

/// `rule(a, b, c, d)` elementwise over `operands` (one to four arrays of one type, float32 or
/// float64, each broadcasting to `shape`), as a new array of `shape`.
///
/// Equal shapes run as one flat parallel loop; broadcast operands split the leading dimension
/// across threads and walk the rest by runs, with a loop specialized for the rule and the type.
func gradientMap<R: ElementwiseGradient>(_ rule: R, _ shape: [Int], _ operands: [NDArray], _ ctx: KernelContext) throws -> NDArray {
    guard let first = operands.first, operands.count <= 4 else { throw KernelError("gradientMap takes one to four operands") }
    for a in operands where a.dtype != first.dtype {
        throw KernelError("gradient operands have element types \(first.dtype) and \(a.dtype)")
    }
    let out = ctx.allocate(first.dtype, shape)
    switch first.dtype {
    case .float: gradientMapTyped(rule, shape, operands, out, Float.self, ctx)
    case .double: gradientMapTyped(rule, shape, operands, out, Double.self, ctx)
    default: throw KernelError("gradients need float or double, got \(first.dtype)")
    }
    return out
}

private func gradientMapTyped<R: ElementwiseGradient, T: UnaryMathFloat>(
    _ rule: R, _ shape: [Int], _ operands: [NDArray], _ out: NDArray, _: T.Type, _ ctx: KernelContext
) {
    let n = out.count
    if n == 0 { return }
    let ops = (0..<4).map { operands[$0 < operands.count ? $0 : 0] }
    let p0 = UnsafePointer(ops[0].pointer(as: T.self)), p1 = UnsafePointer(ops[1].pointer(as: T.self))
    let p2 = UnsafePointer(ops[2].pointer(as: T.self)), p3 = UnsafePointer(ops[3].pointer(as: T.self))
    let o = out.pointer(as: T.self)
    if ops.allSatisfy({ $0.count == n }) {
        // Each operand broadcasts to `shape` with as many elements: it has that shape.
        ctx.parallelFor(n, grain: unaryGrain) { r in
            for i in r { o[i] = rule.apply(p0[i], p1[i], p2[i], p3[i]) }
        }
        return
    }
    let strides = ops.map { Broadcast.strides(of: $0.shape, to: shape) }
    // Runs of the innermost dimension; `base` offsets the operands and the output.
    func walk(_ sub: [Int], _ subStrides: [[Int]], _ base: [Int], _ outBase: Int) {
        Broadcast.forEachRun(shape: sub, strides: subStrides) { start, offs, len, inner in
            let a = base[0] + offs[0], b = base[1] + offs[1], c = base[2] + offs[2], d = base[3] + offs[3]
            let sa = inner[0], sb = inner[1], sc = inner[2], sd = inner[3]
            let dst = o + outBase + start
            for j in 0..<len { dst[j] = rule.apply(p0[a + j * sa], p1[b + j * sb], p2[c + j * sc], p3[d + j * sd]) }
        }
    }
    // Split the first dimension longer than 1 across threads (leading 1s are common: batch 1).
    if let d = shape.firstIndex(where: { $0 > 1 }), d + 1 < shape.count {
        let sub = Array(shape[(d + 1)...]), subStrides = strides.map { Array($0[(d + 1)...]) }
        let inner = sub.reduce(1, *)
        ctx.parallelFor(shape[d], grain: max(1, unaryGrain / max(1, inner))) { r in
            for i in r { walk(sub, subStrides, strides.map { $0[d] * i }, i * inner) }
        }
    } else {
        walk(shape, strides, [0, 0, 0, 0], 0)
    }
}

extension GradientRegistry {
    /// Registers the VJP of single-input elementwise ops: `rule(g, x, y)` with `g` the output's
    /// cotangent, `x` the input and `y` the output; `make` reads the node's attributes.
    mutating func registerElementwise<R: ElementwiseGradient>(_ ops: [String], _ make: @escaping (GradientContext) throws -> R) {
        register(ops) { c, gs in
            guard c.needs(0) else { return [nil] }
            let x = try c.input(0), y = try c.output(0)
            let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
            return [try gradientMap(try make(c), x.shape, [g, x, y], c.kernel)]
        }
    }
}

/// Derivative rules of the unary math, `(g, x, y) -> dL/dx`.
private enum UnaryGrad {
    struct Neg: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { -g } }
    /// Abs: the sign of x (0 at 0).
    struct Abs: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { x > 0 ? g : (x < 0 ? -g : 0) }
    }
    struct Exp: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * y } }
    struct Log: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / x } }
    struct Sqrt: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / (2 * y) } }
    struct Reciprocal: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { -g * y * y } }
    struct Sin: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * T.mCos(x) } }
    struct Cos: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { -g * T.mSin(x) } }
    struct Tan: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * (1 + y * y) } }
    struct Asin: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / (1 - x * x).squareRoot() }
    }
    struct Acos: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { -g / (1 - x * x).squareRoot() }
    }
    struct Atan: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / (1 + x * x) } }
    struct Sinh: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * T.mCosh(x) } }
    struct Cosh: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * T.mSinh(x) } }
    struct Asinh: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / (x * x + 1).squareRoot() }
    }
    struct Acosh: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / (x * x - 1).squareRoot() }
    }
    struct Atanh: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / (1 - x * x) } }
    /// Erf: 2/√π · e^(−x²).
    struct Erf: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * T(1.12837916709551257390) * T.mExp(-x * x) }
    }
}

/// VJPs of the differentiable unary math. Floor, Ceil, Round and Sign are piecewise constant:
/// their gradient is zero (the derivative almost everywhere).
func registerUnaryGradients(_ r: inout GradientRegistry) {
    r.registerElementwise(["Neg"]) { _ in UnaryGrad.Neg() }
    r.registerElementwise(["Abs"]) { _ in UnaryGrad.Abs() }
    r.registerElementwise(["Exp"]) { _ in UnaryGrad.Exp() }
    r.registerElementwise(["Log"]) { _ in UnaryGrad.Log() }
    r.registerElementwise(["Sqrt"]) { _ in UnaryGrad.Sqrt() }
    r.registerElementwise(["Reciprocal"]) { _ in UnaryGrad.Reciprocal() }
    r.registerElementwise(["Sin"]) { _ in UnaryGrad.Sin() }
    r.registerElementwise(["Cos"]) { _ in UnaryGrad.Cos() }
    r.registerElementwise(["Tan"]) { _ in UnaryGrad.Tan() }
    r.registerElementwise(["Asin"]) { _ in UnaryGrad.Asin() }
    r.registerElementwise(["Acos"]) { _ in UnaryGrad.Acos() }
    r.registerElementwise(["Atan"]) { _ in UnaryGrad.Atan() }
    r.registerElementwise(["Sinh"]) { _ in UnaryGrad.Sinh() }
    r.registerElementwise(["Cosh"]) { _ in UnaryGrad.Cosh() }
    r.registerElementwise(["Asinh"]) { _ in UnaryGrad.Asinh() }
    r.registerElementwise(["Acosh"]) { _ in UnaryGrad.Acosh() }
    r.registerElementwise(["Atanh"]) { _ in UnaryGrad.Atanh() }
    r.registerElementwise(["Erf"]) { _ in UnaryGrad.Erf() }
    r.register(["Floor", "Ceil", "Round", "Sign"]) { c, _ in
        guard c.needs(0) else { return [nil] }
        let x = try c.input(0)
        return [c.kernel.zeros(x.dtype, x.shape)]
    }
}
