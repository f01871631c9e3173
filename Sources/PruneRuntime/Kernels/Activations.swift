import CKernels
import Foundation
import PruneIR

// Activation functions: Relu, LeakyRelu, PRelu, Elu, Selu, Celu, Sigmoid, HardSigmoid,
// HardSwish, Softplus, Softsign, Tanh, Gelu, Mish, Swish, ThresholdedRelu, Shrink, Clip.
//
// The elementwise ones reuse the specialized map loops of Unary.swift; attributes are read once
// in the factory and kept (as Float) in the op struct. Sigmoid, Tanh, Gelu and Swish on float32
// run vectorized approximations from CKernels (a few ulp); other types use libm per element.

/// The elementwise activation functions, in a namespace so that their names cannot clash with other kernel files.
private enum ActivationFn {
    struct ReluOp: NumericUnaryOp {
        // `x < 0 ? 0 : x` keeps NaN (as NumPy's maximum does) and vectorizes to a compare and blend.
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x < 0 ? 0 : x }
        @inline(__always) func applyInt<T: FixedWidthInteger>(_ x: T) -> T { x < 0 ? 0 : x }
    }

    struct LeakyReluOp: FloatUnaryOp {
        let alpha: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x < 0 ? T(alpha) * x : x }
    }

    struct EluOp: FloatUnaryOp {
        let alpha: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x > 0 ? x : T(alpha) * T.mExpm1(x) }
    }

    struct SeluOp: FloatUnaryOp {
        let alpha: Float, gamma: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            T(gamma) * (x > 0 ? x : T(alpha) * T.mExpm1(x))
        }
    }

    struct CeluOp: FloatUnaryOp {
        let alpha: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            let a = T(alpha)
            return x > 0 ? x : a * T.mExpm1(x / a)
        }
    }

    struct SigmoidOp: FloatUnaryOp {
        // exp(-x) overflows to +inf for very negative x, giving 0 (not NaN).
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { 1 / (1 + T.mExp(-x)) }
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            ck_sigmoid_f32(s, d, n)
            return true
        }
    }

    struct HardSigmoidOp: FloatUnaryOp {
        let alpha: Float, beta: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            let y = T(alpha) * x + T(beta)
            return y < 0 ? 0 : (y > 1 ? 1 : y)
        }
    }

    struct HardSwishOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            let y = x * T(1.0 / 6.0) + T(0.5)
            return x * (y < 0 ? 0 : (y > 1 ? 1 : y))
        }
    }

    struct SoftplusOp: FloatUnaryOp {
        // log(1 + e^x) written so that it neither overflows for large x nor loses small values.
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            (x > 0 ? x : 0) + T.mLog1p(T.mExp(-Swift.abs(x)))
        }
    }

    struct SoftsignOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x / (1 + Swift.abs(x)) }
    }

    struct TanhOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { T.mTanh(x) }
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            ck_tanh_f32(s, d, n)
            return true
        }
    }

    struct GeluOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            T(0.5) * x * (1 + T.mErf(x * T(0.70710678118654752440)))
        }
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            ck_gelu_f32(s, d, n)
            return true
        }
    }

    struct GeluTanhOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            let inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x)
            return T(0.5) * x * (1 + T.mTanh(inner))
        }
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            ck_gelu_tanh_f32(s, d, n)
            return true
        }
    }

    struct MishOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            x * T.mTanh((x > 0 ? x : 0) + T.mLog1p(T.mExp(-Swift.abs(x))))
        }
    }

    struct SwishOp: FloatUnaryOp {
        let alpha: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x / (1 + T.mExp(-T(alpha) * x)) }
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            ck_swish_f32(s, d, n, alpha)
            return true
        }
    }

    struct ThresholdedReluOp: FloatUnaryOp {
        let alpha: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T { x > T(alpha) ? x : 0 }
    }

    struct ShrinkOp: FloatUnaryOp {
        let lambd: Float, bias: Float
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            x < -T(lambd) ? x + T(bias) : (x > T(lambd) ? x - T(bias) : 0)
        }
    }
}

// MARK: - Clip

@inline(__always)
private func clipLoop<T: Comparable>(_ x: NDArray, _ out: NDArray, _ lo: T, _ hi: T, _ ctx: KernelContext) {
    let s = x.pointer(as: T.self), d = out.pointer(as: T.self)
    // min(max(x, lo), hi) as NumPy's clip: with lo > hi every element becomes hi; NaN stays NaN.
    ctx.parallelFor(x.count, grain: unaryGrain) { r in
        for i in r {
            let v = s[i]
            let a = v < lo ? lo : v
            d[i] = a > hi ? hi : a
        }
    }
}

/// Clip: bounds from attributes (opset < 11, `attrMin`/`attrMax`) or from optional inputs 1, 2.
private final class ActivationClipKernel: Kernel {
    let attrMin: Float?
    let attrMax: Float?
    let boundsFromInputs: Bool

    init(attrMin: Float?, attrMax: Float?, boundsFromInputs: Bool) {
        self.attrMin = attrMin
        self.attrMax = attrMax
        self.boundsFromInputs = boundsFromInputs
    }

    /// Bound `i` (1 = min, 2 = max) as `T`: read from the input, the attribute, or `fallback`.
    func bound<T>(_ inputs: [NDArray?], _ i: Int, _ x: NDArray, _ fallback: T, _ fromFloat: (Float) -> T) throws -> T {
        if boundsFromInputs {
            guard let b = inputs.optional(i) else { return fallback }
            guard b.dtype == x.dtype else { throw KernelError("Clip bound \(i) has type \(b.dtype), input has \(x.dtype)") }
            guard b.count == 1 else { throw KernelError("Clip bound \(i) must be a scalar, has shape \(b.shape)") }
            return b.pointer(as: T.self)[0]
        }
        guard let a = i == 1 ? attrMin : attrMax else { return fallback }
        return fromFloat(a)
    }

    func floating<T: BinaryFloatingPoint>(_ inputs: [NDArray?], _ x: NDArray, _ out: NDArray, _ type: T.Type, _ ctx: KernelContext) throws {
        let lo = try bound(inputs, 1, x, -T.infinity) { T($0) }
        let hi = try bound(inputs, 2, x, T.infinity) { T($0) }
        clipLoop(x, out, lo, hi, ctx)
    }

    func integer<T: FixedWidthInteger>(_ inputs: [NDArray?], _ x: NDArray, _ out: NDArray, _ type: T.Type, _ ctx: KernelContext) throws {
        let lo = try bound(inputs, 1, x, T.min) { T(clamping: Int64(exactly: $0.rounded(.towardZero)) ?? 0) }
        let hi = try bound(inputs, 2, x, T.max) { T(clamping: Int64(exactly: $0.rounded(.towardZero)) ?? 0) }
        clipLoop(x, out, lo, hi, ctx)
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let out = ctx.allocate(x.dtype, x.shape)
        switch x.dtype {
        case .float: try floating(inputs, x, out, Float.self, ctx)
        case .double: try floating(inputs, x, out, Double.self, ctx)
        case .float16: try floating(inputs, x, out, Float16.self, ctx)
        case .bfloat16:
            // Compared in Float; the clipped values are bfloat16 values, so converting back is exact.
            let lo = try bound(inputs, 1, x, UInt16(0xFF80)) { unaryBF16FromFloat($0) }
            let hi = try bound(inputs, 2, x, UInt16(0x7F80)) { unaryBF16FromFloat($0) }
            let l = unaryFloatFromBF16(lo), h = unaryFloatFromBF16(hi)
            let s = x.pointer(as: UInt16.self), d = out.pointer(as: UInt16.self)
            for i in 0..<x.count {
                var bits = s[i], v = unaryFloatFromBF16(bits)
                if v < l { bits = lo; v = l }
                if v > h { bits = hi }
                d[i] = bits
            }
        case .int8: try integer(inputs, x, out, Int8.self, ctx)
        case .int16: try integer(inputs, x, out, Int16.self, ctx)
        case .int32: try integer(inputs, x, out, Int32.self, ctx)
        case .int64: try integer(inputs, x, out, Int64.self, ctx)
        case .uint8: try integer(inputs, x, out, UInt8.self, ctx)
        case .uint16: try integer(inputs, x, out, UInt16.self, ctx)
        case .uint32: try integer(inputs, x, out, UInt32.self, ctx)
        case .uint64: try integer(inputs, x, out, UInt64.self, ctx)
        default: throw KernelError("Clip on element type \(x.dtype)")
        }
        return [out]
    }
}

// MARK: - PRelu

/// `y = x < 0 ? slope * x : x`, with `slope` broadcast to the shape of `x`.
private func prelu<T: Numeric & Comparable>(_ x: NDArray, _ slope: NDArray, _ out: NDArray, _ type: T.Type, _ ctx: KernelContext) {
    let xp = x.pointer(as: T.self), sp = slope.pointer(as: T.self), d = out.pointer(as: T.self)
    let n = x.count
    if slope.count == 1 {
        let a = sp[0]
        ctx.parallelFor(n, grain: unaryGrain) { r in for i in r { let v = xp[i]; d[i] = v < 0 ? a * v : v } }
    } else if slope.count == n {
        ctx.parallelFor(n, grain: unaryGrain) { r in for i in r { let v = xp[i]; d[i] = v < 0 ? sp[i] * v : v } }
    } else {
        let strides = Broadcast.strides(of: slope.shape, to: x.shape)
        Broadcast.forEachRun(shape: x.shape, strides: [strides]) { start, offsets, length, inner in
            let o = offsets[0], step = inner[0]
            for j in 0..<length {
                let v = xp[start + j]
                d[start + j] = v < 0 ? sp[o + j * step] * v : v
            }
        }
    }
}

private final class ActivationPReluKernel: Kernel {
    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), slope = try inputs.required(1)
        guard slope.dtype == x.dtype else { throw KernelError("PRelu slope has type \(slope.dtype), input has \(x.dtype)") }
        // The slope broadcasts to X (unidirectionally): the output has X's shape.
        guard try Broadcast.shape([x.shape, slope.shape]) == x.shape else {
            throw KernelError("PRelu slope shape \(slope.shape) does not broadcast to input shape \(x.shape)")
        }
        let out = ctx.allocate(x.dtype, x.shape)
        switch x.dtype {
        case .float: prelu(x, slope, out, Float.self, ctx)
        case .double: prelu(x, slope, out, Double.self, ctx)
        case .float16: prelu(x, slope, out, Float16.self, ctx)
        case .int8: prelu(x, slope, out, Int8.self, ctx)
        case .int16: prelu(x, slope, out, Int16.self, ctx)
        case .int32: prelu(x, slope, out, Int32.self, ctx)
        case .int64: prelu(x, slope, out, Int64.self, ctx)
        case .uint8: prelu(x, slope, out, UInt8.self, ctx)
        case .uint16: prelu(x, slope, out, UInt16.self, ctx)
        case .uint32: prelu(x, slope, out, UInt32.self, ctx)
        case .uint64: prelu(x, slope, out, UInt64.self, ctx)
        default: throw KernelError("PRelu on element type \(x.dtype)")
        }
        return [out]
    }
}

// MARK: - Registration

func registerActivationKernels(_ r: inout KernelRegistry) {
    r.registerNumericUnary("Relu", since: 1, integers: unarySignedTypes) { _ in ActivationFn.ReluOp() }
    r.registerFloatUnary("LeakyRelu", since: 1) { ActivationFn.LeakyReluOp(alpha: try $0.attribute("alpha", default: Float(0.01))) }
    r.registerFloatUnary("Elu", since: 1) { ActivationFn.EluOp(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerFloatUnary("Selu", since: 1) {
        ActivationFn.SeluOp(alpha: try $0.attribute("alpha", default: Float(1.67326319217681884765625)),
               gamma: try $0.attribute("gamma", default: Float(1.05070102214813232421875)))
    }
    r.registerFloatUnary("Celu", since: 12) { ActivationFn.CeluOp(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerFloatUnary("Sigmoid", since: 1) { _ in ActivationFn.SigmoidOp() }
    r.registerFloatUnary("HardSigmoid", since: 1) {
        ActivationFn.HardSigmoidOp(alpha: try $0.attribute("alpha", default: Float(0.2)), beta: try $0.attribute("beta", default: Float(0.5)))
    }
    r.registerFloatUnary("HardSwish", since: 14) { _ in ActivationFn.HardSwishOp() }
    r.registerFloatUnary("Softplus", since: 1) { _ in ActivationFn.SoftplusOp() }
    r.registerFloatUnary("Softsign", since: 1) { _ in ActivationFn.SoftsignOp() }
    r.registerFloatUnary("Tanh", since: 1) { _ in ActivationFn.TanhOp() }
    r.register("Gelu", since: 20) { info in
        try unaryRequireType(info, 0, unaryFloatTypes)
        switch try info.attribute("approximate", default: "none") {
        case "none": return floatUnaryKernel(ActivationFn.GeluOp())
        case "tanh": return floatUnaryKernel(ActivationFn.GeluTanhOp())
        case let other: throw KernelError.unsupported("Gelu approximate='\(other)'")
        }
    }
    r.registerFloatUnary("Mish", since: 18) { _ in ActivationFn.MishOp() }
    r.registerFloatUnary("Swish", since: 24) { ActivationFn.SwishOp(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerFloatUnary("ThresholdedRelu", since: 10) { ActivationFn.ThresholdedReluOp(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerFloatUnary("Shrink", since: 9) {
        ActivationFn.ShrinkOp(lambd: try $0.attribute("lambd", default: Float(0.5)), bias: try $0.attribute("bias", default: Float(0)))
    }

    r.register("PRelu", since: 1) { info in
        try unaryRequireType(info, 0, unaryFloatTypes.union(unarySignedTypes).union(unaryUnsignedTypes).subtracting([.bfloat16]))
        return ActivationPReluKernel()
    }

    // Before opset 11 the bounds are float attributes; from 11 on they are optional scalar inputs.
    r.register("Clip", since: 1) { info in
        try unaryRequireType(info, 0, unaryFloatTypes)
        return ActivationClipKernel(attrMin: try info.attribute("min", as: Float.self),
                          attrMax: try info.attribute("max", as: Float.self), boundsFromInputs: false)
    }
    r.register("Clip", since: 11) { info in
        try unaryRequireType(info, 0, unaryFloatTypes.union(unarySignedTypes).union(unaryUnsignedTypes))
        return ActivationClipKernel(attrMin: nil, attrMax: nil, boundsFromInputs: true)
    }
}
