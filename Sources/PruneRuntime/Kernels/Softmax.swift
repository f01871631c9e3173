import Foundation
import PruneIR

// Softmax, LogSoftmax, Hardmax.
//
// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and each row of the trailing
// block is normalized as a whole; from 13 on the op works along the single axis (default -1).
// Float32 rows that are contiguous take a vectorized path (CKernels' softmax rows: AVX2+FMA exp
// where the CPU has it); anything else loops per (possibly strided) row.

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
        let (outer, n, inner) = try SoftmaxKernel.rows(of: x.shape, axis: axis, legacy: legacy)
        switch x.dtype {
        case .float:
            return [compute(x, Float.self, outer, n, inner, ctx)]
        case .double:
            return [compute(x, Double.self, outer, n, inner, ctx)]
        case .float16 where kind != .hardmax:
            return [half(x, outer, n, inner, ctx)]
        case .float16, .bfloat16:
            let f = FloatBridge.toFloat(x, ctx)
            return [FloatBridge.fromFloat(compute(f, Float.self, outer, n, inner, ctx), to: x.dtype, ctx)]
        default:
            throw KernelError("element type \(x.dtype) is not supported")
        }
    }

    /// The rows normalized in an array shaped `shape`: `outer × inner` of them, `n` elements each,
    /// `inner` apart. Before opset 13 (`legacy`) a row is the whole trailing block from `axis`.
    static func rows(of shape: [Int], axis: Int, legacy: Bool) throws -> (outer: Int, n: Int, inner: Int) {
        let rank = shape.count
        let a = axis < 0 ? axis + rank : axis
        guard (rank == 0 && (axis == 0 || axis == -1)) || (a >= 0 && a < rank) else {
            throw KernelError("axis \(axis) out of range for rank \(rank)")
        }
        let outer = shape.prefix(max(0, a)).reduce(1, *)
        if legacy || rank == 0 { return (outer, shape.dropFirst(max(0, a)).reduce(1, *), 1) }
        return (outer, shape[a], shape.dropFirst(a + 1).reduce(1, *))
    }

    /// float16 rounded after every step, as onnx's reference (numpy in float16) computes it:
    /// `t = x - max`, `e = exp(t)`, `s = sum(e)` (accumulated in Float), then `e / s` or
    /// `t - log(s)`. Rounding once at the end instead differs by an ulp, beyond rtol 1e-3.
    /// Whole-array passes in float32 with vectorized conversions and roundings (the same
    /// roundings, in the same order, as per-element Float16 arithmetic).
    func half(_ x: NDArray, _ outer: Int, _ n: Int, _ inner: Int, _ ctx: KernelContext) -> NDArray {
        let count = x.count
        if kind == .softmax && inner == 1 {
            // Contiguous rows, each on its own (the fused attention's blocks share the row code).
            let y = FloatBridge.toFloat(x, ctx)
            let py = y.pointer(as: Float.self)
            ctx.parallelFor(outer, grain: max(1, 8192 / max(1, n))) { range in
                for row in range { SoftmaxMath.halfRow(py + row * n, n) }
            }
            return FloatBridge.fromFloat(y, to: .float16, ctx)
        }
        // t = x - max, rounded.
        let t = FloatBridge.toFloat(x, ctx)
        let e = ctx.allocate(.float, x.shape)
        let tp = t.pointer(as: Float.self), ep = e.pointer(as: Float.self)
        for k in 0..<(outer * inner) {
            let o = k / inner, j = k - o * inner
            let base = o * n * inner + j
            var m = -Float.infinity
            for i in 0..<n { m = max(m, tp[base + i * inner]) }
            for i in 0..<n { tp[base + i * inner] -= m }
        }
        VectorKernels.roundThrough(tp, bfloat16: false, tp, count: count)
        // e = exp(t), rounded.
        for i in 0..<count { ep[i] = expf(tp[i]) }
        VectorKernels.roundThrough(ep, bfloat16: false, ep, count: count)
        let log = kind == .logSoftmax
        for k in 0..<(outer * inner) {
            let o = k / inner, j = k - o * inner
            let base = o * n * inner + j
            var sum: Float = 0
            for i in 0..<n { sum += ep[base + i * inner] }
            let s = Float(Float16(sum))
            if log {
                let ls = Float(Float16(logf(s)))
                for i in 0..<n { ep[base + i * inner] = tp[base + i * inner] - ls }
            } else {
                for i in 0..<n { ep[base + i * inner] /= s }
            }
        }
        return FloatBridge.fromFloat(e, to: .float16, ctx)
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
            let log = kind == .logSoftmax
            ctx.parallelFor(outer, grain: grain) { range in
                var o = range.lowerBound
                while o < range.upperBound {
                    o += VectorKernels.softmaxRows(xf + o * n, yf + o * n, rows: range.upperBound - o, length: n, log: log)
                    // A row whose maximum is not finite (inf, NaN, all -inf): the exact path gives
                    // the reference's NaNs / values.
                    if o < range.upperBound {
                        SoftmaxMath.genericRow(kind, xf + o * n, yf + o * n, n, 1)
                        o += 1
                    }
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
    /// Softmax of a contiguous row of float16 values held in float32, in place, rounded to float16
    /// after every step as ``SoftmaxKernel/half(_:_:_:_:_:)`` computes it: `t = x − max`,
    /// `e = exp(t)`, `s = Σ e` (accumulated in Float, then rounded), `e / s`.
    static func halfRow(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        guard n > 0 else { return }
        var m = -Float.infinity
        for i in 0..<n { m = max(m, x[i]) }
        for i in 0..<n { x[i] -= m }
        VectorKernels.roundThrough(x, bfloat16: false, x, count: n)
        for i in 0..<n { x[i] = expf(x[i]) }
        VectorKernels.roundThrough(x, bfloat16: false, x, count: n)
        var sum: Float = 0
        for i in 0..<n { sum += x[i] }
        let s = Float(Float16(sum))
        for i in 0..<n { x[i] /= s }
        VectorKernels.roundThrough(x, bfloat16: false, x, count: n)
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
}

// MARK: Gradients

/// VJPs of Softmax (`dx = y ⊙ (g − Σ g·y)`) and LogSoftmax (`dx = g − eʸ·Σ g`), per row as the
/// kernel lays rows out: before opset 13 a row is the whole trailing block from `axis` (the 2-D
/// coercion), from 13 on the single axis. Hardmax is piecewise constant and has none.
func registerSoftmaxGradients(_ r: inout GradientRegistry) {
    r.register(["Softmax", "LogSoftmax"]) { c, gs in
        guard c.needs(0) else { return [nil] }
        let x = try c.input(0), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let legacy = c.opset < 13
        let axis: Int = try c.attribute("axis", default: legacy ? 1 : -1)
        let (outer, n, inner) = try SoftmaxKernel.rows(of: x.shape, axis: axis, legacy: legacy)
        let log = c.node.opType.name == "LogSoftmax"
        let out = c.kernel.allocate(x.dtype, x.shape)
        func go<F: BinaryFloatingPoint>(_: F.Type) {
            let gp = UnsafePointer(g.pointer(as: F.self)), yp = UnsafePointer(y.pointer(as: F.self))
            let dp = out.pointer(as: F.self)
            c.kernel.parallelFor(outer * inner, grain: max(1, 8192 / max(1, n))) { range in
                for k in range {
                    let o = k / inner, j = k - o * inner
                    let base = o * n * inner + j
                    var s = 0.0
                    if log {
                        for i in 0..<n { s += Double(gp[base + i * inner]) }
                        for i in 0..<n {
                            let p = base + i * inner
                            dp[p] = F(Double(gp[p]) - Foundation.exp(Double(yp[p])) * s)
                        }
                    } else {
                        for i in 0..<n { let p = base + i * inner; s += Double(gp[p]) * Double(yp[p]) }
                        for i in 0..<n {
                            let p = base + i * inner
                            dp[p] = F(Double(yp[p]) * (Double(gp[p]) - s))
                        }
                    }
                }
            }
        }
        switch x.dtype {
        case .float: go(Float.self)
        case .double: go(Double.self)
        default: throw KernelError("gradient of \(c.node.opType.name) on \(x.dtype)")
        }
        return [out]
    }
}
