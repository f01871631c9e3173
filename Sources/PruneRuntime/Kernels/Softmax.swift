import Foundation
import PruneIR

// Softmax, LogSoftmax, Hardmax.
//
// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and each row of the trailing
// block is normalized as a whole; from 13 on the op works along the single axis (default -1).
// Float32 rows that are contiguous take a vectorized path (SIMD exp); anything else loops per
// (possibly strided) row.

func registerSoftmaxKernels(_ r: inout KernelRegistry) {
    for (name, kind) in [("Softmax", SoftmaxKind.softmax), ("LogSoftmax", .logSoftmax), ("Hardmax", .hardmax)] {
        r.register(name, since: 1) { info in try SoftmaxKernel(info, kind: kind, legacy: true) }
        r.register(name, since: 13) { info in try SoftmaxKernel(info, kind: kind, legacy: false) }
    }
}

/// Which member of the softmax family a ``SoftmaxKernel`` computes.
enum SoftmaxKind {
    case softmax, logSoftmax, hardmax
}

/// Softmax, LogSoftmax or Hardmax along an axis.
final class SoftmaxKernel: Kernel {
    let kind: SoftmaxKind
    let axis: Int
    /// Opset < 13: coerce to 2-D at `axis` and normalize whole trailing blocks.
    let legacy: Bool

    init(_ info: KernelBuildInfo, kind: SoftmaxKind, legacy: Bool) throws {
        self.kind = kind
        self.legacy = legacy
        axis = try info.attribute("axis", default: legacy ? 1 : -1)
        if let t = info.inputType(0), ![.float, .double, .float16, .bfloat16].contains(t) {
            throw KernelError.unsupported("element type \(t)")
        }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let rank = x.rank
        let a = axis < 0 ? axis + rank : axis
        guard (rank == 0 && (axis == 0 || axis == -1)) || (a >= 0 && a < rank) else {
            throw KernelError("axis \(axis) out of range for rank \(rank)")
        }
        let outer = x.shape.prefix(max(0, a)).reduce(1, *)
        let n: Int, inner: Int
        if legacy || rank == 0 {
            n = x.shape.dropFirst(max(0, a)).reduce(1, *)
            inner = 1
        } else {
            n = x.shape[a]
            inner = x.shape.dropFirst(a + 1).reduce(1, *)
        }
        switch x.dtype {
        case .float:
            return [compute(x, Float.self, outer, n, inner, ctx)]
        case .double:
            return [compute(x, Double.self, outer, n, inner, ctx)]
        case .float16 where kind != .hardmax:
            return [half(x, outer, n, inner, ctx)]
        case .float16, .bfloat16:
            let f = WideFloat.toFloat(x, ctx)
            return [WideFloat.fromFloat(compute(f, Float.self, outer, n, inner, ctx), to: x.dtype, ctx)]
        default:
            throw KernelError("element type \(x.dtype) is not supported")
        }
    }

    /// float16 rounded after every step, as onnx's reference (numpy in float16) computes it:
    /// `t = x - max`, `e = exp(t)`, `s = sum(e)` (accumulated in Float), then `e / s` or
    /// `t - log(s)`. Rounding once at the end instead differs by an ulp, beyond rtol 1e-3.
    func half(_ x: NDArray, _ outer: Int, _ n: Int, _ inner: Int, _ ctx: KernelContext) -> NDArray {
        let out = ctx.allocate(.float16, x.shape)
        let xp = x.pointer(as: Float16.self), yp = out.pointer(as: Float16.self)
        let log = kind == .logSoftmax
        for k in 0..<(outer * inner) {
            let o = k / inner, j = k - o * inner
            let base = o * n * inner + j
            var m = -Float.infinity
            for i in 0..<n { m = max(m, Float(xp[base + i * inner])) }
            var sum: Float = 0
            for i in 0..<n {
                let t = Float(Float16(Float(xp[base + i * inner]) - m))
                sum += Float(Float16(expf(t)))
            }
            let s = Float(Float16(sum))
            let ls = Float(Float16(logf(s)))
            for i in 0..<n {
                let t = Float(Float16(Float(xp[base + i * inner]) - m))
                yp[base + i * inner] = log ? Float16(t - ls) : Float16(Float(Float16(expf(t))) / s)
            }
        }
        return out
    }

    func compute<F: BinaryFloatingPoint>(
        _ x: NDArray, _: F.Type, _ outer: Int, _ n: Int, _ inner: Int, _ ctx: KernelContext
    ) -> NDArray {
        let out = ctx.allocate(x.dtype, x.shape)
        if x.count == 0 { return out }
        let xp = UnsafePointer(x.pointer(as: F.self))
        let yp = out.pointer(as: F.self)
        let kind = self.kind
        let grain = max(1, 8192 / max(1, n))
        if F.self == Float.self && inner == 1 && kind != .hardmax {
            let xf = UnsafePointer<Float>(OpaquePointer(xp)), yf = UnsafeMutablePointer<Float>(OpaquePointer(yp))
            ctx.parallelFor(outer, grain: grain) { range in
                for o in range {
                    SoftmaxMath.floatRow(xf + o * n, yf + o * n, n, log: kind == .logSoftmax)
                }
            }
            return out
        }
        ctx.parallelFor(outer * inner, grain: grain) { range in
            for k in range {
                let o = k / inner, j = k - o * inner
                let base = o * n * inner + j
                SoftmaxMath.genericRow(kind, xp + base, yp + base, n, inner)
            }
        }
        return out
    }
}

/// Row kernels of the softmax family.
enum SoftmaxMath {
    /// Softmax (or log-softmax) of `n` contiguous floats.
    @inline(__always)
    static func floatRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, log: Bool) {
        let m = ReduceVec.max(x, n)
        if !m.isFinite {
            // All -inf (or inf / NaN present): the scalar path gives the reference's NaNs.
            genericRow(log ? .logSoftmax : .softmax, x, y, n, 1)
            return
        }
        let mv = SIMD8<Float>(repeating: m)
        var acc = SIMD8<Float>()
        var i = 0
        if log {
            while i + 8 <= n {
                acc += exp8(ReduceVec.load(x, i) - mv)
                i += 8
            }
            var s = acc.sum()
            while i < n { s += expf(x[i] - m); i += 1 }
            let shift = m + logf(s)
            for i in 0..<n { y[i] = x[i] - shift }
        } else {
            while i + 8 <= n {
                let e = exp8(ReduceVec.load(x, i) - mv)
                UnsafeMutableRawPointer(y + i).storeBytes(of: e, as: SIMD8<Float>.self)
                acc += e
                i += 8
            }
            var s = acc.sum()
            while i < n { let e = expf(x[i] - m); y[i] = e; s += e; i += 1 }
            let r = 1 / s
            for i in 0..<n { y[i] *= r }
        }
    }

    /// Any family member over a strided row, accumulating in Double.
    @inline(__always)
    static func genericRow<F: BinaryFloatingPoint>(
        _ kind: SoftmaxKind, _ x: UnsafePointer<F>, _ y: UnsafeMutablePointer<F>, _ n: Int, _ s: Int
    ) {
        guard n > 0 else { return }
        switch kind {
        case .hardmax:
            var best = 0
            for i in 1..<n where x[i * s] > x[best * s] { best = i }
            for i in 0..<n { y[i * s] = i == best ? 1 : 0 }
        case .softmax, .logSoftmax:
            var m = -Double.infinity
            for i in 0..<n { m = Swift.max(m, Double(x[i * s])) }
            var sum = 0.0
            for i in 0..<n { sum += Foundation.exp(Double(x[i * s]) - m) }
            if kind == .softmax {
                let r = 1 / sum
                for i in 0..<n { y[i * s] = F(Foundation.exp(Double(x[i * s]) - m) * r) }
            } else {
                let shift = m + Foundation.log(sum)
                for i in 0..<n { y[i * s] = F(Double(x[i * s]) - shift) }
            }
        }
    }

    /// exp of 8 floats (Cephes-style range reduction and polynomial; about 1 ulp). Inputs below
    /// -86.6 give 0 (instead of values under 2e-38), above the float range +inf.
    @inline(__always)
    static func exp8(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let lo = SIMD8<Float>(repeating: -86.6), hi = SIMD8<Float>(repeating: 88.72283)
        var x = v.replacing(with: lo, where: v .< lo).replacing(with: hi, where: v .> hi)
        // n = round(x / ln 2) via the 1.5 * 2^23 trick, which also leaves n in the low bits.
        let magic = SIMD8<Float>(repeating: 12582912)
        let t = x * SIMD8<Float>(repeating: 1.44269504088896341) + magic
        let fx = t - magic
        x = x - fx * SIMD8<Float>(repeating: 0.693359375)
        x = x - fx * SIMD8<Float>(repeating: -2.12194440e-4)
        var y = SIMD8<Float>(repeating: 1.9875691500e-4)
        y = y * x + SIMD8<Float>(repeating: 1.3981999507e-3)
        y = y * x + SIMD8<Float>(repeating: 8.3334519073e-3)
        y = y * x + SIMD8<Float>(repeating: 4.1665795894e-2)
        y = y * x + SIMD8<Float>(repeating: 1.6666665459e-1)
        y = y * x + SIMD8<Float>(repeating: 5.0000001201e-1)
        y = y * (x * x) + x + SIMD8<Float>(repeating: 1)
        // 2 * 2^(n-1) from exponent bits: n is in [-125, 128], so 2^(n-1) is a normal float.
        let n = unsafeBitCast(t, to: SIMD8<Int32>.self) &- SIMD8<Int32>(repeating: 0x4B40_0000)
        let p = unsafeBitCast((n &+ 126) &<< 23, to: SIMD8<Float>.self)
        return ((y + y) * p).replacing(with: 0, where: v .< lo).replacing(with: .infinity, where: v .> hi)
    }
}
