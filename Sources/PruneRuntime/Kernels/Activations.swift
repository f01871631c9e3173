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
            VectorKernels.apply(.sigmoid, s, d, count: n)
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
            VectorKernels.apply(.tanh, s, d, count: n)
            return true
        }
    }

    struct GeluOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            T(0.5) * x * (1 + T.mErf(x * T(0.70710678118654752440)))
        }
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            VectorKernels.apply(.gelu, s, d, count: n)
            return true
        }
    }

    struct GeluTanhOp: FloatUnaryOp {
        @inline(__always) func apply<T: UnaryMathFloat>(_ x: T) -> T {
            let inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x)
            return T(0.5) * x * (1 + T.mTanh(inner))
        }
        @inline(__always) func mapFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
            VectorKernels.apply(.geluTanh, s, d, count: n)
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
            VectorKernels.apply(.swish(alpha: alpha), s, d, count: n)
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
        guard try Broadcast.shape(x.shape, slope.shape) == x.shape else {
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

// MARK: Gradients

/// Derivative rules of the activations, `(g, x, y) -> dL/dx`, with the attributes as the kernels
/// read them (float32 values). At the kinks (Relu at 0, the clamps' ends) the rule takes the
/// one-sided derivative the kernel's comparison selects.
private enum ActivationGrad {
    struct Relu: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { x > 0 ? g : 0 } }
    struct LeakyRelu: ElementwiseGradient {
        let alpha: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { x < 0 ? T(alpha) * g : g }
    }
    /// Elu: α·eˣ = y + α below 0.
    struct Elu: ElementwiseGradient {
        let alpha: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { x > 0 ? g : g * T(alpha) * T.mExp(x) }
    }
    struct Selu: ElementwiseGradient {
        let alpha: Float, gamma: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            x > 0 ? T(gamma) * g : g * T(gamma) * T(alpha) * T.mExp(x)
        }
    }
    struct Celu: ElementwiseGradient {
        let alpha: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { x > 0 ? g : g * T.mExp(x / T(alpha)) }
    }
    struct Sigmoid: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * y * (1 - y) } }
    struct HardSigmoid: ElementwiseGradient {
        let alpha: Float, beta: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            let v = T(alpha) * x + T(beta)
            return v > 0 && v < 1 ? T(alpha) * g : 0
        }
    }
    /// HardSwish: x·clamp(x/6 + ½, 0, 1); x/3 + ½ on the ramp.
    struct HardSwish: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            let v = x * T(1.0 / 6.0) + T(0.5)
            return v < 0 ? 0 : (v > 1 ? g : g * (x * T(1.0 / 3.0) + T(0.5)))
        }
    }
    /// Softplus: the logistic sigmoid of x.
    struct Softplus: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g / (1 + T.mExp(-x)) }
    }
    struct Softsign: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            let d = 1 + Swift.abs(x)
            return g / (d * d)
        }
    }
    struct Tanh: ElementwiseGradient { func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { g * (1 - y * y) } }
    /// Gelu: Φ(x) + x·φ(x).
    struct Gelu: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            let cdf = T(0.5) * (1 + T.mErf(x * T(0.70710678118654752440)))
            let pdf = T(0.39894228040143267794) * T.mExp(T(-0.5) * x * x)
            return g * (cdf + x * pdf)
        }
    }
    /// Gelu (tanh): ½(1 + t) + ½x(1 − t²)·k(1 + 3·0.044715x²), t = tanh(k(x + 0.044715x³)).
    struct GeluTanh: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            let k = T(0.79788456080286535588), c = T(0.044715)
            let t = T.mTanh(k * (x + c * x * x * x))
            return g * (T(0.5) * (1 + t) + T(0.5) * x * (1 - t * t) * k * (1 + 3 * c * x * x))
        }
    }
    /// Mish: tanh(sp) + x(1 − tanh²(sp))·σ(x), sp = softplus(x).
    struct Mish: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            let t = T.mTanh((x > 0 ? x : 0) + T.mLog1p(T.mExp(-Swift.abs(x))))
            return g * (t + x * (1 - t * t) / (1 + T.mExp(-x)))
        }
    }
    /// Swish: σ(αx)(1 + αx(1 − σ(αx))).
    struct Swish: ElementwiseGradient {
        let alpha: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T {
            let ax = T(alpha) * x, s = 1 / (1 + T.mExp(-ax))
            return g * s * (1 + ax * (1 - s))
        }
    }
    struct ThresholdedRelu: ElementwiseGradient {
        let alpha: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { x > T(alpha) ? g : 0 }
    }
    struct Shrink: ElementwiseGradient {
        let lambd: Float
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ y: T, _: T) -> T { x < -T(lambd) || x > T(lambd) ? g : 0 }
    }
    /// PRelu's input: `(g, x, slope)`.
    struct PReluX: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ s: T, _: T) -> T { x < 0 ? s * g : g }
    }
    /// PRelu's slope, before summing down to its shape: `(g, x)`.
    struct PReluSlope: ElementwiseGradient {
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _: T, _: T) -> T { x < 0 ? g * x : 0 }
    }
    /// Clip, one of its three operands (`which`: 0 the input, 1 the min, 2 the max) from
    /// `(g, x, lo, hi)`: the value each output element took, as the kernel picks it (`max(x, lo)`
    /// then `min(·, hi)`; with lo > hi every element is hi).
    struct Clip: ElementwiseGradient {
        let which: Int
        func apply<T: UnaryMathFloat>(_ g: T, _ x: T, _ lo: T, _ hi: T) -> T {
            let a = x < lo ? lo : x
            let source = a > hi ? 2 : (x < lo ? 1 : 0)
            return source == which ? g : 0
        }
    }
}

/// VJPs of the activations. PRelu differentiates both the input and the slope (summed over the
/// dimensions the slope broadcasts along). Clip passes the cotangent where the input is within
/// [min, max]; from opset 11 on, the min and max inputs get the cotangent summed over the
/// elements clamped to them.
func registerActivationGradients(_ r: inout GradientRegistry) {
    r.registerElementwise(["Relu"]) { _ in ActivationGrad.Relu() }
    r.registerElementwise(["LeakyRelu"]) { ActivationGrad.LeakyRelu(alpha: try $0.attribute("alpha", default: Float(0.01))) }
    r.registerElementwise(["Elu"]) { ActivationGrad.Elu(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerElementwise(["Selu"]) {
        ActivationGrad.Selu(alpha: try $0.attribute("alpha", default: Float(1.67326319217681884765625)),
                            gamma: try $0.attribute("gamma", default: Float(1.05070102214813232421875)))
    }
    r.registerElementwise(["Celu"]) { ActivationGrad.Celu(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerElementwise(["Sigmoid"]) { _ in ActivationGrad.Sigmoid() }
    r.registerElementwise(["HardSigmoid"]) {
        ActivationGrad.HardSigmoid(alpha: try $0.attribute("alpha", default: Float(0.2)), beta: try $0.attribute("beta", default: Float(0.5)))
    }
    r.registerElementwise(["HardSwish"]) { _ in ActivationGrad.HardSwish() }
    r.registerElementwise(["Softplus"]) { _ in ActivationGrad.Softplus() }
    r.registerElementwise(["Softsign"]) { _ in ActivationGrad.Softsign() }
    r.registerElementwise(["Tanh"]) { _ in ActivationGrad.Tanh() }
    r.register(["Gelu"]) { c, gs in
        guard c.needs(0) else { return [nil] }
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        switch try c.attribute("approximate", default: "none") {
        case "tanh": return [try gradientMap(ActivationGrad.GeluTanh(), x.shape, [g, x], c.kernel)]
        default: return [try gradientMap(ActivationGrad.Gelu(), x.shape, [g, x], c.kernel)]
        }
    }
    r.registerElementwise(["Mish"]) { _ in ActivationGrad.Mish() }
    r.registerElementwise(["Swish"]) { ActivationGrad.Swish(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerElementwise(["ThresholdedRelu"]) { ActivationGrad.ThresholdedRelu(alpha: try $0.attribute("alpha", default: Float(1))) }
    r.registerElementwise(["Shrink"]) { ActivationGrad.Shrink(lambd: try $0.attribute("lambd", default: Float(0.5))) }

    r.register(["PRelu"]) { c, gs in
        let x = try c.input(0), slope = try c.input(1), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let gx = c.needs(0) ? try gradientMap(ActivationGrad.PReluX(), x.shape, [g, x, slope], c.kernel) : nil
        var gSlope: NDArray?
        if c.needs(1) {
            gSlope = GradientMath.reduce(try gradientMap(ActivationGrad.PReluSlope(), x.shape, [g, x], c.kernel), to: slope.shape, c.kernel)
        }
        return [gx, gSlope]
    }

    r.register(["Clip"]) { c, gs in
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        // The bounds as scalars of x's type (±infinity when absent).
        func bound(_ i: Int, _ fallback: Double) throws -> NDArray {
            var v = fallback
            if c.opset >= 11 {
                if i < c.inputs.count, let b = c.inputs[i] { v = b.element(at: 0) }
            } else if let a = try c.attribute(i == 1 ? "min" : "max", as: Float.self) {
                v = Double(a)
            }
            return x.dtype == .double ? NDArray(scalar: v) : NDArray(scalar: Float(v))
        }
        let lo = try bound(1, -.infinity), hi = try bound(2, .infinity)
        let operands = [g, x, lo, hi]
        var out: [NDArray?] = [c.needs(0) ? try gradientMap(ActivationGrad.Clip(which: 0), x.shape, operands, c.kernel) : nil]
        for i in 1...2 where i < c.inputs.count {
            guard c.needs(i), let b = c.inputs[i] else { out.append(nil); continue }
            let total = try gradientMap(ActivationGrad.Clip(which: i), x.shape, operands, c.kernel).doubles().reduce(0, +)
            out.append(b.dtype == .double ? NDArray([total], shape: b.shape) : NDArray([Float(total)], shape: b.shape))
        }
        return out
    }
}
