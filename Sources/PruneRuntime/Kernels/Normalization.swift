import Foundation
import PruneIR

// Normalizations: BatchNormalization, LayerNormalization, InstanceNormalization,
// GroupNormalization, RMSNormalization, LpNormalization, MeanVarianceNormalization, LRN.
//
// Statistics use two passes (mean, then squared deviations) for accuracy. Float32 work runs on
// contiguous blocks with vectorized loops; double runs the same code generically; float16 and
// bfloat16 are widened to float32 and narrowed back.

func registerNormalizationKernels(_ r: inout KernelRegistry) {
    r.register("BatchNormalization", since: 1) { info in try BatchNormKernel(info) }
    r.register("LayerNormalization", since: 17) { info in try LayerNormKernel(info, rms: false) }
    r.register("RMSNormalization", since: 23) { info in try LayerNormKernel(info, rms: true) }
    r.register("InstanceNormalization", since: 1) { info in try GroupNormKernel(info, instance: true) }
    r.register("GroupNormalization", since: 18) { info in try GroupNormKernel(info, instance: false) }
    r.register("LpNormalization", since: 1) { info in try LpNormKernel(info) }
    r.register("MeanVarianceNormalization", since: 9) { info in try MVNKernel(info) }
    r.register("LRN", since: 1) { info in try LRNKernel(info) }
}

private let floatTypes: [DType] = [.float, .double, .float16, .bfloat16]

private func checkFloat(_ info: KernelBuildInfo, _ inputs: [Int]) throws {
    for i in inputs {
        if let t = info.inputType(i), !floatTypes.contains(t) { throw KernelError.unsupported("element type \(t)") }
    }
}

/// Runs `body` on `x` widened to float32 (for 16-bit floats) or as is (float, double), and
/// narrows the result back to `x`'s type.
private func withWorkingType(
    _ x: NDArray, _ ctx: KernelContext, _ body: (NDArray) throws -> NDArray
) throws -> NDArray {
    switch x.dtype {
    case .float, .double: return try body(x)
    case .float16, .bfloat16: return FloatBridge.fromFloat(try body(FloatBridge.toFloat(x, ctx)), to: x.dtype, ctx)
    default: throw KernelError("element type \(x.dtype) is not supported")
    }
}

/// Shared inner loops.
enum NormMath {
    @inline(__always)
    static func asFloat<F>(_ p: UnsafePointer<F>) -> UnsafePointer<Float> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
    }

    @inline(__always)
    static func asFloat<F>(_ p: UnsafeMutablePointer<F>) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
    }

    /// Mean and population variance of `n` contiguous elements.
    @inline(__always)
    static func meanVariance<F: BinaryFloatingPoint>(_ p: UnsafePointer<F>, _ n: Int) -> (mean: Double, variance: Double) {
        if n == 0 { return (.nan, .nan) }
        if F.self == Float.self {
            let pf = asFloat(p)
            let m = ReduceVec.sum(pf, n) / Float(n)
            return (Double(m), Double(ReduceVec.sumSquaredDiff(pf, n, m)) / Double(n))
        }
        var s = 0.0
        for i in 0..<n { s += Double(p[i]) }
        let m = s / Double(n)
        var v = 0.0
        for i in 0..<n { let d = Double(p[i]) - m; v += d * d }
        return (m, v / Double(n))
    }

    /// Mean of squares of `n` contiguous elements.
    @inline(__always)
    static func meanSquare<F: BinaryFloatingPoint>(_ p: UnsafePointer<F>, _ n: Int) -> Double {
        if F.self == Float.self { return Double(ReduceVec.sumSquares(asFloat(p), n)) / Double(n) }
        var s = 0.0
        for i in 0..<n { let v = Double(p[i]); s += v * v }
        return s / Double(n)
    }

    /// `y[i] = x[i] * a + b` over `n` contiguous elements.
    @inline(__always)
    static func affine<F: BinaryFloatingPoint>(_ x: UnsafePointer<F>, _ y: UnsafeMutablePointer<F>, _ n: Int, _ a: Double, _ b: Double) {
        if F.self == Float.self {
            let xf = asFloat(x), yf = asFloat(y)
            let af = Float(a), bf = Float(b)
            for i in 0..<n { yf[i] = xf[i] * af + bf }
            return
        }
        let af = F(a), bf = F(b)
        for i in 0..<n { y[i] = x[i] * af + bf }
    }

    /// Elements of a small parameter array converted to `F`.
    static func params<F: BinaryFloatingPoint>(_ a: NDArray, _: F.Type) -> [F] {
        if a.dtype == .float { return a.buffer(as: Float.self).map { F($0) } }
        if a.dtype == .double { return a.buffer(as: Double.self).map { F($0) } }
        return a.doubles().map { F($0) }
    }

    /// `p` broadcast to `shape` (a trailing block of the input) and flattened.
    static func expand<F: BinaryFloatingPoint>(_ p: NDArray, to shape: [Int], _: F.Type, what: String) throws -> [F] {
        let count = shape.reduce(1, *)
        let values: [F] = params(p, F.self)
        if p.count == count && (p.shape == shape || p.shape.filter { $0 != 1 } == shape.filter { $0 != 1 }) {
            return values
        }
        var ps = p.shape
        while ps.count > shape.count, ps.first == 1 { ps.removeFirst() }
        guard ps.count <= shape.count, (try? Broadcast.shape(ps, shape)) == shape else {
            throw KernelError("\(what) of shape \(p.shape) does not broadcast to \(shape)")
        }
        let strides = Broadcast.strides(of: ps, to: shape)
        var out = [F](repeating: 0, count: count)
        Broadcast.forEachRun(shape: shape, strides: [strides]) { start, offsets, len, inner in
            for i in 0..<len { out[start + i] = values[offsets[0] + i * inner[0]] }
        }
        return out
    }

    /// An array of `dtype` (a float type) holding `values`.
    static func array(_ values: [Double], shape: [Int], dtype: DType, _ ctx: KernelContext) -> NDArray {
        let out = ctx.allocate(dtype, shape)
        let n = values.count
        switch dtype {
        case .double: let d = out.pointer(as: Double.self); for i in 0..<n { d[i] = values[i] }
        case .float16: let d = out.pointer(as: Float16.self); for i in 0..<n { d[i] = Float16(values[i]) }
        case .bfloat16: let d = out.pointer(as: UInt16.self); for i in 0..<n { d[i] = FloatBridge.bfloat16Bits(Float(values[i])) }
        default: let d = out.pointer(as: Float.self); for i in 0..<n { d[i] = Float(values[i]) }
        }
        return out
    }
}

// MARK: - BatchNormalization

/// BatchNormalization: inference mode (running statistics), and training mode from opset 14
/// (batch statistics, with updated running mean and variance as extra outputs).
final class BatchNormKernel: Kernel {
    let epsilon: Double
    let momentum: Double
    let training: Bool
    let outputCount: Int

    init(_ info: KernelBuildInfo) throws {
        epsilon = Double(try info.attribute("epsilon", default: Float(1e-5)))
        momentum = Double(try info.attribute("momentum", default: Float(0.9)))
        let mode = try info.attribute("training_mode", default: 0)
        training = info.opset >= 14 && mode != 0
        outputCount = info.node.outputs.filter { !$0.isOmitted }.count
        let spatial = try info.attribute("spatial", default: 1)
        if info.opset < 9 && spatial == 0 {
            throw KernelError.unsupported("spatial = 0")
        }
        if !training && outputCount > 1 {
            throw KernelError.unsupported("training-mode outputs (mean and variance)")
        }
        try checkFloat(info, [0, 1, 2, 3, 4])
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let scale = try inputs.required(1), bias = try inputs.required(2)
        let mean = try inputs.required(3), variance = try inputs.required(4)
        guard x.rank >= 2 else { throw KernelError("input must have rank >= 2, has shape \(x.shape)") }
        let n = x.shape[0], c = x.shape[1]
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        for (name, p) in [("scale", scale), ("B", bias), ("mean", mean), ("var", variance)] where p.count != c {
            throw KernelError("\(name) has \(p.count) elements, expected \(c)")
        }
        var m = mean.doubles(), v = variance.doubles()
        let s = scale.doubles(), b = bias.doubles()
        var extra: [NDArray?] = []
        if training {
            let (bm, bv) = BatchNormKernel.batchStatistics(x, n: n, c: c, spatial: spatial, ctx)
            let runMean = zip(m, bm).map { $0 * momentum + $1 * (1 - momentum) }
            let runVar = zip(v, bv).map { $0 * momentum + $1 * (1 - momentum) }
            extra = [NormMath.array(runMean, shape: mean.shape, dtype: mean.dtype, ctx),
                     NormMath.array(runVar, shape: variance.shape, dtype: variance.dtype, ctx)]
            m = bm
            v = bv
        }
        var a = [Double](repeating: 0, count: c), sh = a
        for i in 0..<c {
            a[i] = s[i] / (v[i] + epsilon).squareRoot()
            sh[i] = b[i] - m[i] * a[i]
        }
        let y = try withWorkingType(x, ctx) { w in
            func go<F: BinaryFloatingPoint>(_: F.Type) -> NDArray {
                let out = ctx.allocate(w.dtype, w.shape)
                let xp = UnsafePointer(w.pointer(as: F.self)), yp = out.pointer(as: F.self)
                ctx.parallelFor(n * c, grain: max(1, 16384 / max(1, spatial))) { range in
                    for plane in range {
                        let ch = plane % c
                        NormMath.affine(xp + plane * spatial, yp + plane * spatial, spatial, a[ch], sh[ch])
                    }
                }
                return out
            }
            return w.dtype == .double ? go(Double.self) : go(Float.self)
        }
        return [y] + extra.prefix(max(0, outputCount - 1))
    }

    /// Per-channel mean and population variance over the batch and spatial dimensions (the
    /// training-mode statistics; the VJP differentiates through the same values).
    static func batchStatistics(_ x: NDArray, n: Int, c: Int, spatial: Int, _ ctx: KernelContext) -> (mean: [Double], variance: [Double]) {
        let w = x.dtype == .double ? x : FloatBridge.toFloat(x, ctx)
        // Moments of each (sample, channel) plane.
        var pm = [Double](repeating: 0, count: n * c), pv = pm
        func go<F: BinaryFloatingPoint>(_: F.Type) {
            let xp = UnsafePointer(w.pointer(as: F.self))
            pm.withUnsafeMutableBufferPointer { pmb in
                pv.withUnsafeMutableBufferPointer { pvb in
                    ctx.parallelFor(n * c, grain: max(1, 16384 / max(1, spatial))) { range in
                        for p in range { (pmb[p], pvb[p]) = NormMath.meanVariance(xp + p * spatial, spatial) }
                    }
                }
            }
        }
        if w.dtype == .double { go(Double.self) } else { go(Float.self) }
        var means = [Double](repeating: 0, count: c), vars = means
        let count = Double(n * spatial)
        for ch in 0..<c {
            var s = 0.0
            for b in 0..<n { s += pm[b * c + ch] * Double(spatial) }
            let mu = s / count
            var q = 0.0
            for b in 0..<n {
                // Per-plane variance plus the spread of plane means (parallel-axis theorem).
                let d = pm[b * c + ch] - mu
                q += (pv[b * c + ch] + d * d) * Double(spatial)
            }
            means[ch] = mu
            vars[ch] = q / count
        }
        return (means, vars)
    }
}

// MARK: - LayerNormalization, RMSNormalization

/// LayerNormalization (17) and RMSNormalization (23): normalize each row of the trailing block
/// that starts at `axis`, then scale (and, for LayerNormalization, shift).
final class LayerNormKernel: Kernel {
    let rms: Bool
    let axis: Int
    let epsilon: Double
    /// Element types of the optional Mean / InvStdDev outputs (nil when not requested).
    let statTypes: [DType?]

    init(_ info: KernelBuildInfo, rms: Bool) throws {
        self.rms = rms
        axis = try info.attribute("axis", default: -1)
        epsilon = Double(try info.attribute("epsilon", default: Float(1e-5)))
        var types: [DType?] = []
        if !rms {
            for i in 1..<3 {
                if i < info.node.outputs.count, !info.node.outputs[i].isOmitted {
                    types.append(info.node.outputs[i].type?.elementType ?? .float)
                } else {
                    types.append(nil)
                }
            }
        }
        statTypes = types
        try checkFloat(info, [0, 1, 2])
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let scale = try inputs.required(1)
        let bias = rms ? nil : inputs.optional(2)
        let (a, rows, tail, cols) = try LayerNormKernel.rows(of: x.shape, axis: axis)
        var means = [Double](repeating: 0, count: rows), invs = means
        let rms = self.rms, eps = epsilon
        let y = try withWorkingType(x, ctx) { w in
            func go<F: BinaryFloatingPoint>(_: F.Type) throws -> NDArray {
                let s: [F] = try NormMath.expand(scale, to: tail, F.self, what: "scale")
                let b: [F]? = try bias.map { try NormMath.expand($0, to: tail, F.self, what: "bias") }
                let out = ctx.allocate(w.dtype, w.shape)
                let xp = UnsafePointer(w.pointer(as: F.self)), yp = out.pointer(as: F.self)
                s.withUnsafeBufferPointer { sb in
                    let sp = sb.baseAddress!
                    let bb = b ?? []
                    bb.withUnsafeBufferPointer { bbuf in
                        let bp = b == nil ? nil : bbuf.baseAddress
                        LayerNormKernel.forEachRow(xp, rows: rows, cols: cols, rms: rms, epsilon: eps, means: &means, invs: &invs,
                                                   grain: max(1, 8192 / max(1, cols)), ctx) { r, mean, inv in
                            LayerNormKernel.row(xp + r * cols, yp + r * cols, cols, F(mean), F(inv), sp, bp)
                        }
                    }
                }
                return out
            }
            return w.dtype == .double ? try go(Double.self) : try go(Float.self)
        }
        var outs: [NDArray?] = [y]
        let statShape = Array(x.shape.prefix(a)) + [Int](repeating: 1, count: x.rank - a)
        for (i, t) in statTypes.enumerated() {
            outs.append(t.map { NormMath.array(i == 0 ? means : invs, shape: statShape, dtype: $0, ctx) })
        }
        return outs
    }

    /// The rows normalized in an array shaped `shape`: the axis made non-negative, the number of
    /// rows, and the trailing block from the axis (one row) with its element count.
    static func rows(of shape: [Int], axis: Int) throws -> (axis: Int, rows: Int, tail: [Int], cols: Int) {
        let rank = shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < max(rank, 1) else { throw KernelError("axis \(axis) out of range for rank \(rank)") }
        let tail = Array(shape.dropFirst(a))
        return (a, shape.prefix(a).reduce(1, *), tail, tail.reduce(1, *))
    }

    /// Mean (0 for RMSNormalization) and inverse standard deviation (inverse root mean square)
    /// of one row of `n` elements.
    @inline(__always)
    static func statistics<F: BinaryFloatingPoint>(_ x: UnsafePointer<F>, _ n: Int, rms: Bool,
                                                   epsilon: Double) -> (mean: Double, inv: Double) {
        if rms { return (0, 1 / (NormMath.meanSquare(x, n) + epsilon).squareRoot()) }
        let (m, v) = NormMath.meanVariance(x, n)
        return (m, 1 / (v + epsilon).squareRoot())
    }

    /// The row pass of the kernel and its VJP: per row of `x` (`rows` × `cols`, in parallel), the
    /// statistics, stored in `means` and `invs`, then `body(row, mean, inv)` on the same thread.
    @inline(__always)
    static func forEachRow<F: BinaryFloatingPoint>(
        _ x: UnsafePointer<F>, rows: Int, cols: Int, rms: Bool, epsilon: Double, means: inout [Double], invs: inout [Double],
        grain: Int, _ ctx: KernelContext, _ body: (Int, Double, Double) -> Void
    ) {
        means.withUnsafeMutableBufferPointer { mb in
            invs.withUnsafeMutableBufferPointer { ib in
                ctx.parallelFor(rows, grain: grain) { range in
                    for r in range {
                        let (mean, inv) = statistics(x + r * cols, cols, rms: rms, epsilon: epsilon)
                        mb[r] = mean
                        ib[r] = inv
                        body(r, mean, inv)
                    }
                }
            }
        }
    }

    /// `y = (x - mean) * inv * s + b` over one row (`b` may be absent).
    @inline(__always)
    static func row<F: BinaryFloatingPoint>(
        _ x: UnsafePointer<F>, _ y: UnsafeMutablePointer<F>, _ n: Int, _ mean: F, _ inv: F,
        _ s: UnsafePointer<F>, _ b: UnsafePointer<F>?
    ) {
        if let b {
            for i in 0..<n { y[i] = (x[i] - mean) * inv * s[i] + b[i] }
        } else {
            for i in 0..<n { y[i] = (x[i] - mean) * inv * s[i] }
        }
    }
}

// MARK: - InstanceNormalization, GroupNormalization

/// InstanceNormalization and GroupNormalization: statistics per (sample, group of channels), then
/// a per-channel (or, for GroupNormalization-18 with per-group parameters, per-group) affine map.
final class GroupNormKernel: Kernel {
    let instance: Bool
    let groups: Int
    let epsilon: Double
    /// GroupNormalization before 21 specifies scale and bias per group.
    let perGroupParams: Bool

    init(_ info: KernelBuildInfo, instance: Bool) throws {
        self.instance = instance
        epsilon = Double(try info.attribute("epsilon", default: Float(1e-5)))
        if instance {
            groups = 0
            perGroupParams = false
        } else {
            guard let g = try info.attribute("num_groups", as: Int.self), g > 0 else {
                throw KernelError("num_groups must be a positive integer")
            }
            groups = g
            perGroupParams = info.opset < 21
        }
        try checkFloat(info, [0, 1, 2])
    }

    /// How a run on `x` splits it: `n` samples of `c` channels of `spatial` elements, `groups`
    /// groups of `cpg` channels; `perGroup` when scale and bias hold one value per group.
    struct Geometry {
        var n: Int, c: Int, spatial: Int, groups: Int, cpg: Int
        var perGroup: Bool
        /// Elements of one (sample, group) block.
        var block: Int { cpg * spatial }

        /// Parameter values per channel (per-group values repeated over their channels).
        func perChannel(_ p: [Double]) -> [Double] {
            perGroup ? (0..<c).map { p[$0 / cpg] } : p
        }
    }

    /// The geometry of a run on `x` with these parameters; throws where the channels do not
    /// split into the groups.
    func geometry(_ x: NDArray, scale: NDArray, bias: NDArray) throws -> Geometry {
        guard x.rank >= 2 else { throw KernelError("input must have rank >= 2, has shape \(x.shape)") }
        let n = x.shape[0], c = x.shape[1]
        let g = instance ? c : groups
        guard g > 0, c % g == 0 else { throw KernelError("\(c) channels do not split into \(g) groups") }
        // Per-group parameters (opset 18) when sized by groups; per-channel otherwise.
        let perGroup = perGroupParams && scale.count == g && bias.count == g && g != c
        return Geometry(n: n, c: c, spatial: x.shape.dropFirst(2).reduce(1, *), groups: g, cpg: c / g, perGroup: perGroup)
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let scale = try inputs.required(1), bias = try inputs.required(2)
        let l = try geometry(x, scale: scale, bias: bias)
        let n = l.n, c = l.c, spatial = l.spatial, g = l.groups, cpg = l.cpg, block = l.block
        let s = l.perChannel(scale.doubles()), b = l.perChannel(bias.doubles())
        guard s.count == c, b.count == c else {
            throw KernelError("scale and bias must have \(c) elements, have \(s.count) and \(b.count)")
        }
        let eps = epsilon
        let y = try withWorkingType(x, ctx) { w in
            func go<F: BinaryFloatingPoint>(_: F.Type) -> NDArray {
                let out = ctx.allocate(w.dtype, w.shape)
                let xp = UnsafePointer(w.pointer(as: F.self)), yp = out.pointer(as: F.self)
                ctx.parallelFor(n * g, grain: max(1, 16384 / max(1, block))) { range in
                    for blk in range {
                        let base = blk * block
                        let (mean, v) = NormMath.meanVariance(xp + base, block)
                        let inv = 1 / (v + eps).squareRoot()
                        let c0 = (blk % g) * cpg
                        for k in 0..<cpg {
                            let a = inv * s[c0 + k]
                            NormMath.affine(xp + base + k * spatial, yp + base + k * spatial, spatial, a, b[c0 + k] - mean * a)
                        }
                    }
                }
                return out
            }
            return w.dtype == .double ? go(Double.self) : go(Float.self)
        }
        return [y]
    }
}

// MARK: - LpNormalization

/// LpNormalization: divide by the L1 or L2 norm along `axis` (zero norms give zeros).
final class LpNormKernel: Kernel {
    let axis: Int
    let p: Int

    init(_ info: KernelBuildInfo) throws {
        axis = try info.attribute("axis", default: -1)
        p = try info.attribute("p", default: 2)
        guard p == 1 || p == 2 else { throw KernelError.unsupported("p = \(p) (only 1 and 2 are defined)") }
        try checkFloat(info, [0])
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let (outer, n, inner) = try LpNormKernel.fibers(of: x.shape, axis: axis)
        let p = self.p
        let y = try withWorkingType(x, ctx) { w in
            func go<F: BinaryFloatingPoint>(_: F.Type) -> NDArray {
                let out = ctx.allocate(w.dtype, w.shape)
                let xp = UnsafePointer(w.pointer(as: F.self)), yp = out.pointer(as: F.self)
                ctx.parallelFor(outer * inner, grain: max(1, 8192 / max(1, n))) { range in
                    for k in range {
                        let o = k / inner, j = k - o * inner
                        let base = o * n * inner + j
                        let norm = LpNormKernel.norm(xp + base, n, stride: inner, p: p)
                        let r = norm == 0 ? 0 : 1 / norm
                        for i in 0..<n { yp[base + i * inner] = F(Double(xp[base + i * inner]) * r) }
                    }
                }
                return out
            }
            return w.dtype == .double ? go(Double.self) : go(Float.self)
        }
        return [y]
    }

    /// The fibers along `axis` of an array shaped `shape`: `outer × inner` of them, `n` elements
    /// each, `inner` apart.
    static func fibers(of shape: [Int], axis: Int) throws -> (outer: Int, n: Int, inner: Int) {
        let rank = shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw KernelError("axis \(axis) out of range for rank \(rank)") }
        return (shape.prefix(a).reduce(1, *), shape[a], shape.dropFirst(a + 1).reduce(1, *))
    }

    /// The L1 (`p` = 1) or L2 norm of `n` elements `stride` apart, in Double.
    @inline(__always)
    static func norm<F: BinaryFloatingPoint>(_ x: UnsafePointer<F>, _ n: Int, stride: Int, p: Int) -> Double {
        var acc = 0.0
        for i in 0..<n {
            let v = Double(x[i * stride])
            acc += p == 1 ? abs(v) : v * v
        }
        return p == 1 ? acc : acc.squareRoot()
    }
}

// MARK: - MeanVarianceNormalization

/// MeanVarianceNormalization: `(x - mean) / (sqrt(variance) + 1e-9)` over `axes`.
final class MVNKernel: Kernel {
    let axes: [Int]

    init(_ info: KernelBuildInfo) throws {
        axes = try info.attribute("axes", default: [0, 2, 3])
        try checkFloat(info, [0])
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let mask = try ReduceKernel.axisMask(axes, rank: x.rank)
        // Work in double: this op is rare and the statistics then need no care.
        let xd = ctx.allocate(.double, x.shape)
        let dp = xd.pointer(as: Double.self)
        for i in 0..<x.count { dp[i] = x.element(at: i) }
        let mean = try ReduceKernel.reduce(xd, op: .mean, mask: mask, keepdims: true, ctx)
        let mp = mean.pointer(as: Double.self)
        let strides = [Broadcast.contiguousStrides(x.shape), Broadcast.strides(of: mean.shape, to: x.shape)]
        let sq = ctx.allocate(.double, x.shape)
        let sp = sq.pointer(as: Double.self)
        Broadcast.forEachRun(shape: x.shape, strides: strides) { start, offsets, len, inner in
            for i in 0..<len {
                let d = dp[offsets[0] + i * inner[0]] - mp[offsets[1] + i * inner[1]]
                sp[start + i] = d * d
            }
        }
        let variance = try ReduceKernel.reduce(sq, op: .mean, mask: mask, keepdims: true, ctx)
        let vp = variance.pointer(as: Double.self)
        var y = [Double](repeating: 0, count: x.count)
        Broadcast.forEachRun(shape: x.shape, strides: strides) { start, offsets, len, inner in
            for i in 0..<len {
                let k = offsets[1] + i * inner[1]
                y[start + i] = (dp[offsets[0] + i * inner[0]] - mp[k]) / (vp[k].squareRoot() + 1e-9)
            }
        }
        return [NormMath.array(y, shape: x.shape, dtype: x.dtype, ctx)]
    }
}

// MARK: - LRN

/// LRN: `x / (bias + alpha / size * sum of squares over a window of channels) ^ beta`.
final class LRNKernel: Kernel {
    let alpha: Double, beta: Double, bias: Double
    let size: Int

    init(_ info: KernelBuildInfo) throws {
        alpha = Double(try info.attribute("alpha", default: Float(0.0001)))
        beta = Double(try info.attribute("beta", default: Float(0.75)))
        bias = Double(try info.attribute("bias", default: Float(1)))
        guard let s = try info.attribute("size", as: Int.self), s > 0 else { throw KernelError("size must be positive") }
        size = s
        try checkFloat(info, [0])
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        guard x.rank >= 2 else { throw KernelError("input must have rank >= 2, has shape \(x.shape)") }
        let n = x.shape[0], c = x.shape[1], spatial = x.shape.dropFirst(2).reduce(1, *)
        let before = (size - 1) / 2, after = size - 1 - before  // floor and ceil of (size - 1) / 2
        let k = alpha / Double(size), beta = self.beta, bias = self.bias
        let y = try withWorkingType(x, ctx) { w in
            func go<F: BinaryFloatingPoint>(_: F.Type) -> NDArray {
                let out = ctx.allocate(w.dtype, w.shape)
                let xp = UnsafePointer(w.pointer(as: F.self)), yp = out.pointer(as: F.self)
                ctx.parallelFor(n * c, grain: max(1, 4096 / max(1, spatial * size))) { range in
                    var sq = [Double](repeating: 0, count: spatial)
                    for plane in range {
                        let b = plane / c, ch = plane % c
                        for j in 0..<spatial { sq[j] = 0 }
                        for cc in max(0, ch - before)...min(c - 1, ch + after) {
                            let p = xp + (b * c + cc) * spatial
                            for j in 0..<spatial { let v = Double(p[j]); sq[j] += v * v }
                        }
                        let src = xp + plane * spatial, dst = yp + plane * spatial
                        for j in 0..<spatial {
                            dst[j] = F(Double(src[j]) / Foundation.pow(bias + k * sq[j], beta))
                        }
                    }
                }
                return out
            }
            return w.dtype == .double ? go(Double.self) : go(Float.self)
        }
        return [y]
    }
}

// MARK: Gradients

/// Gradient helpers shared by the normalization VJPs.
enum NormGrad {
    /// The working element type of a VJP: float32 or float64 for x, the cotangent and the result.
    static func check(_ x: NDArray, _ g: NDArray) throws {
        guard x.dtype == .float || x.dtype == .double, g.dtype == x.dtype else {
            throw KernelError("gradient on element types \(x.dtype) (input) and \(g.dtype) (cotangent)")
        }
    }

    /// A parameter's gradient from per-element `values` of the block it was broadcast over
    /// (`block`, the shape ``NormMath/expand(_:to:_:what:)`` broadcasts it to): summed down to
    /// the parameter's shape, in its element type.
    static func parameter(_ values: [Double], block: [Int], like p: NDArray, _ ctx: KernelContext) -> NDArray {
        let dtype: DType = p.dtype == .double ? .double : .float
        if p.count == values.count {
            return cast(NormMath.array(values, shape: p.shape, dtype: dtype, ctx), like: p, ctx)
        }
        var ps = p.shape
        while ps.count > block.count, ps.first == 1 { ps.removeFirst() }
        let full = NormMath.array(values, shape: block, dtype: dtype, ctx)
        return cast(GradientMath.reduce(full, to: ps, ctx).reshaped(p.shape), like: p, ctx)
    }

    /// Per-channel `values` as a gradient shaped and typed like `p`.
    static func vector(_ values: [Double], like p: NDArray, _ ctx: KernelContext) -> NDArray {
        NormMath.array(values, shape: p.shape, dtype: p.dtype, ctx)
    }

    static func cast(_ a: NDArray, like p: NDArray, _ ctx: KernelContext) -> NDArray {
        a.dtype == p.dtype ? a : NormMath.array(a.doubles(), shape: p.shape, dtype: p.dtype, ctx)
    }

    /// Sums `count` contiguous elements of `a` times `b` (or of `a` alone), in Double.
    @inline(__always)
    static func dot<F: BinaryFloatingPoint>(_ a: UnsafePointer<F>, _ b: UnsafePointer<F>?, _ count: Int) -> Double {
        var s = 0.0
        if let b {
            for i in 0..<count { s += Double(a[i]) * Double(b[i]) }
        } else {
            for i in 0..<count { s += Double(a[i]) }
        }
        return s
    }

    /// `Σ g·(x − m)` over `count` contiguous elements, in Double.
    @inline(__always)
    static func centeredDot<F: BinaryFloatingPoint>(_ g: UnsafePointer<F>, _ x: UnsafePointer<F>, _ m: Double, _ count: Int) -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(g[i]) * (Double(x[i]) - m) }
        return s
    }
}

/// VJP of LayerNormalization (x, scale, bias; the Mean and InvStdDev outputs' cotangents too)
/// and RMSNormalization (x, scale). Per row of the trailing block from `axis`, with
/// `x̂ = (x − μ)·σ⁻¹` and `ĝ = g ⊙ scale`: `dx = σ⁻¹(ĝ − mean ĝ − x̂ · mean(ĝ ⊙ x̂))` (RMS
/// drops the `mean ĝ` term), `dscale = Σ_rows g ⊙ x̂`, `dbias = Σ_rows g`.
private func layerNormGradient(_ c: GradientContext, _ gs: [NDArray?], rms: Bool) throws -> [NDArray?] {
    let x = try c.input(0), scale = try c.input(1), y = try c.output(0)
    let bias = rms ? nil : c.inputs.count > 2 ? c.inputs[2] : nil
    let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
    try NormGrad.check(x, g)
    let eps = Double(try c.attribute("epsilon", default: Float(1e-5)))
    let (_, rows, tail, cols) = try LayerNormKernel.rows(of: x.shape, axis: try c.attribute("axis", default: -1))
    // Cotangents of the statistics outputs (LayerNormalization only), one per row.
    let gMean = rms || gs.count < 2 ? nil : gs[1]?.doubles()
    let gInv = rms || gs.count < 3 ? nil : gs[2]?.doubles()
    let wantX = c.needs(0), wantScale = c.needs(1), wantBias = c.needs(2) && bias != nil
    var means = [Double](repeating: 0, count: rows), invs = means
    var dScale = [Double](repeating: 0, count: wantScale ? cols : 0), dBias = [Double](repeating: 0, count: wantBias ? cols : 0)
    let dx = wantX ? c.kernel.allocate(x.dtype, x.shape) : nil
    let k = c.kernel
    func go<F: BinaryFloatingPoint>(_: F.Type) throws {
        let s: [F] = try NormMath.expand(scale, to: tail, F.self, what: "scale")
        let xp = UnsafePointer(x.pointer(as: F.self)), gp = UnsafePointer(g.pointer(as: F.self))
        let dp = dx?.pointer(as: F.self)
        s.withUnsafeBufferPointer { sb in
            let sp = sb.baseAddress!
            LayerNormKernel.forEachRow(xp, rows: rows, cols: cols, rms: rms, epsilon: eps, means: &means, invs: &invs,
                                       grain: max(1, 4096 / max(1, cols)), k) { r, mean, inv in
                guard let dp else { return }
                let xr = xp + r * cols, gr = gp + r * cols
                var sumG = 0.0, sumGX = 0.0
                for i in 0..<cols {
                    let gh = Double(gr[i]) * Double(sp[i])
                    sumG += gh
                    sumGX += gh * (Double(xr[i]) - mean) * inv
                }
                let n = Double(cols)
                // Mean output: dμ/dx = 1/n; InvStdDev output: dσ⁻¹/dx = −σ⁻²·x̂/n.
                let shift = (rms ? 0 : sumG / n) - (gMean?[r] ?? 0) / (n * inv)
                let tilt = sumGX / n + (gInv?[r] ?? 0) * inv / n
                let dr = dp + r * cols
                for i in 0..<cols {
                    let xh = (Double(xr[i]) - mean) * inv
                    dr[i] = F(inv * (Double(gr[i]) * Double(sp[i]) - shift - xh * tilt))
                }
            }
        }
        if wantScale || wantBias {
            // Column sums over rows; threads take disjoint column ranges.
            dScale.withUnsafeMutableBufferPointer { ds in
                dBias.withUnsafeMutableBufferPointer { db in
                    k.parallelFor(cols, grain: max(1, 65536 / max(1, rows))) { range in
                        for r in 0..<rows {
                            let xr = xp + r * cols, gr = gp + r * cols
                            let m = means[r], inv = invs[r]
                            if wantScale { for j in range { ds[j] += Double(gr[j]) * (Double(xr[j]) - m) * inv } }
                            if wantBias { for j in range { db[j] += Double(gr[j]) } }
                        }
                    }
                }
            }
        }
    }
    if x.dtype == .double { try go(Double.self) } else { try go(Float.self) }
    var out: [NDArray?] = [dx, wantScale ? NormGrad.parameter(dScale, block: tail, like: scale, c.kernel) : nil]
    if !rms { out.append(wantBias ? bias.map { NormGrad.parameter(dBias, block: tail, like: $0, c.kernel) } : nil) }
    return out
}

/// VJP of InstanceNormalization and GroupNormalization (x, scale, bias). Statistics per
/// (sample, group); per-group scale and bias (GroupNormalization before opset 21, when sized by
/// groups) get their channels' gradients summed.
private func groupNormGradient(_ c: GradientContext, _ gs: [NDArray?], instance: Bool) throws -> [NDArray?] {
    let x = try c.input(0), scale = try c.input(1), bias = try c.input(2), y = try c.output(0)
    let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
    try NormGrad.check(x, g)
    let kernel = try GroupNormKernel(KernelBuildInfo(node: c.node, opset: c.opset), instance: instance)
    let l = try kernel.geometry(x, scale: scale, bias: bias)
    let eps = kernel.epsilon
    let n = l.n, ch = l.c, spatial = l.spatial, groups = l.groups, cpg = l.cpg, block = l.block, perGroup = l.perGroup
    let s = l.perChannel(scale.doubles())
    guard s.count == ch else { throw KernelError("scale must have \(ch) elements, has \(s.count)") }
    let wantX = c.needs(0), wantParams = c.needs(1) || c.needs(2)
    let dx = wantX ? c.kernel.allocate(x.dtype, x.shape) : nil
    // Per (sample, channel) plane: Σ g and Σ g·x̂.
    var planeG = [Double](repeating: 0, count: n * ch), planeGX = planeG
    func go<F: BinaryFloatingPoint>(_: F.Type) {
        let xp = UnsafePointer(x.pointer(as: F.self)), gp = UnsafePointer(g.pointer(as: F.self))
        let dp = dx?.pointer(as: F.self)
        planeG.withUnsafeMutableBufferPointer { pg in
            planeGX.withUnsafeMutableBufferPointer { pgx in
                c.kernel.parallelFor(n * groups, grain: max(1, 8192 / max(1, block))) { range in
                    for blk in range {
                        let base = blk * block
                        let (mean, v) = NormMath.meanVariance(xp + base, block)
                        let inv = 1 / (v + eps).squareRoot()
                        let c0 = (blk % groups) * cpg, plane0 = (blk / groups) * ch + c0
                        var sumG = 0.0, sumGX = 0.0
                        for kk in 0..<cpg {
                            let o = base + kk * spatial
                            let sg = NormGrad.dot(gp + o, nil, spatial)
                            let sgx = NormGrad.centeredDot(gp + o, xp + o, mean, spatial) * inv
                            pg[plane0 + kk] = sg
                            pgx[plane0 + kk] = sgx
                            sumG += s[c0 + kk] * sg
                            sumGX += s[c0 + kk] * sgx
                        }
                        guard let dp else { continue }
                        let shift = sumG / Double(block), tilt = sumGX / Double(block)
                        for kk in 0..<cpg {
                            let o = base + kk * spatial, sc = s[c0 + kk]
                            for i in 0..<spatial {
                                let xh = (Double(xp[o + i]) - mean) * inv
                                dp[o + i] = F(inv * (Double(gp[o + i]) * sc - shift - xh * tilt))
                            }
                        }
                    }
                }
            }
        }
    }
    if x.dtype == .double { go(Double.self) } else { go(Float.self) }
    guard wantParams else { return [dx, nil, nil] }
    var dScale = [Double](repeating: 0, count: ch), dBias = dScale
    for b in 0..<n {
        for k in 0..<ch {
            dScale[k] += planeGX[b * ch + k]
            dBias[k] += planeG[b * ch + k]
        }
    }
    if perGroup {
        dScale = (0..<groups).map { grp in dScale[(grp * cpg)..<((grp + 1) * cpg)].reduce(0, +) }
        dBias = (0..<groups).map { grp in dBias[(grp * cpg)..<((grp + 1) * cpg)].reduce(0, +) }
    }
    return [dx,
            c.needs(1) ? NormGrad.vector(dScale, like: scale, c.kernel) : nil,
            c.needs(2) ? NormGrad.vector(dBias, like: bias, c.kernel) : nil]
}

/// VJP of BatchNormalization (x, scale, B, input_mean, input_var).
///
/// Inference mode: `y = (x − mean)·a + B` with `a = scale / √(var + ε)` per channel, so
/// `dx = g·a`, `dscale = Σ g·(x − mean)/√(var + ε)`, `dB = Σ g`, `dmean = −a·Σ g`,
/// `dvar = −½·scale·(var + ε)^(−3/2)·Σ g·(x − mean)`.
/// Training mode (opset ≥ 14): the batch statistics depend on x (`dx` as for an instance norm
/// over batch and space per channel), and the running mean/var outputs
/// (`momentum·input + (1 − momentum)·batch statistic`) pass their cotangents to x and to the
/// input mean/var.
private func batchNormGradient(_ c: GradientContext, _ gs: [NDArray?]) throws -> [NDArray?] {
    let x = try c.input(0), y = try c.output(0)
    let scale = try c.input(1), bias = try c.input(2), mean = try c.input(3), variance = try c.input(4)
    let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
    try NormGrad.check(x, g)
    guard x.rank >= 2 else { throw KernelError("input must have rank >= 2, has shape \(x.shape)") }
    let eps = Double(try c.attribute("epsilon", default: Float(1e-5)))
    let momentum = Double(try c.attribute("momentum", default: Float(0.9)))
    let mode: Int = try c.attribute("training_mode", default: 0)
    let training = c.opset >= 14 && mode != 0
    let n = x.shape[0], ch = x.shape[1]
    let spatial = x.shape.dropFirst(2).reduce(1, *)
    let s = scale.doubles()
    var m = mean.doubles(), v = variance.doubles()
    let count = Double(n * spatial)
    let gRunMean = training && gs.count > 1 ? gs[1]?.doubles() : nil
    let gRunVar = training && gs.count > 2 ? gs[2]?.doubles() : nil
    let dx = c.needs(0) ? c.kernel.allocate(x.dtype, x.shape) : nil
    var planeG = [Double](repeating: 0, count: n * ch), planeGX = planeG
    if training { (m, v) = BatchNormKernel.batchStatistics(x, n: n, c: ch, spatial: spatial, c.kernel) }
    let inv = v.map { 1 / ($0 + eps).squareRoot() }
    func go<F: BinaryFloatingPoint>(_: F.Type) {
        let xp = UnsafePointer(x.pointer(as: F.self)), gp = UnsafePointer(g.pointer(as: F.self))
        planeG.withUnsafeMutableBufferPointer { pg in
            planeGX.withUnsafeMutableBufferPointer { pgx in
                c.kernel.parallelFor(n * ch, grain: max(1, 16384 / max(1, spatial))) { range in
                    for p in range {
                        pg[p] = NormGrad.dot(gp + p * spatial, nil, spatial)
                        pgx[p] = NormGrad.centeredDot(gp + p * spatial, xp + p * spatial, m[p % ch], spatial)
                    }
                }
            }
        }
        guard let dp = dx?.pointer(as: F.self) else { return }
        // dx = a·g + shift + tilt·(x − mean), per channel.
        var a = [Double](repeating: 0, count: ch), shift = a, tilt = a
        for k in 0..<ch {
            a[k] = s[k] * inv[k]
            guard training else { continue }
            var sg = 0.0, sgx = 0.0
            for b in 0..<n { sg += planeG[b * ch + k]; sgx += planeGX[b * ch + k] }
            shift[k] = -a[k] * sg / count + (1 - momentum) * (gRunMean?[k] ?? 0) / count
            tilt[k] = -a[k] * inv[k] * inv[k] * sgx / count + (1 - momentum) * 2 * (gRunVar?[k] ?? 0) / count
        }
        c.kernel.parallelFor(n * ch, grain: max(1, 16384 / max(1, spatial))) { range in
            for p in range {
                let k = p % ch, o = p * spatial
                let ak = a[k], sk = shift[k], tk = tilt[k], mk = m[k]
                for i in 0..<spatial { dp[o + i] = F(ak * Double(gp[o + i]) + sk + tk * (Double(xp[o + i]) - mk)) }
            }
        }
    }
    if x.dtype == .double { go(Double.self) } else { go(Float.self) }
    var sumG = [Double](repeating: 0, count: ch), sumGX = sumG
    for b in 0..<n {
        for k in 0..<ch {
            sumG[k] += planeG[b * ch + k]
            sumGX[k] += planeGX[b * ch + k]
        }
    }
    let dScale = (0..<ch).map { sumGX[$0] * inv[$0] }
    let dMean: [Double], dVar: [Double]
    if training {
        dMean = (0..<ch).map { momentum * (gRunMean?[$0] ?? 0) }
        dVar = (0..<ch).map { momentum * (gRunVar?[$0] ?? 0) }
    } else {
        dMean = (0..<ch).map { -s[$0] * inv[$0] * sumG[$0] }
        dVar = (0..<ch).map { -0.5 * s[$0] * inv[$0] * inv[$0] * inv[$0] * sumGX[$0] }
    }
    return [dx,
            c.needs(1) ? NormGrad.vector(dScale, like: scale, c.kernel) : nil,
            c.needs(2) ? NormGrad.vector(sumG, like: bias, c.kernel) : nil,
            c.needs(3) ? NormGrad.vector(dMean, like: mean, c.kernel) : nil,
            c.needs(4) ? NormGrad.vector(dVar, like: variance, c.kernel) : nil]
}

/// VJP of LpNormalization: with `y = x / N` along `axis`,
/// `dx = (g − d · Σ g·y) / N`, `d = y` for p = 2 and `sign(x)` for p = 1; zero where `N = 0`.
private func lpNormGradient(_ c: GradientContext, _ gs: [NDArray?]) throws -> [NDArray?] {
    guard c.needs(0) else { return [nil] }
    let x = try c.input(0), y = try c.output(0)
    let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
    try NormGrad.check(x, g)
    let p: Int = try c.attribute("p", default: 2)
    let (outer, n, inner) = try LpNormKernel.fibers(of: x.shape, axis: try c.attribute("axis", default: -1))
    let dx = c.kernel.allocate(x.dtype, x.shape)
    func go<F: BinaryFloatingPoint>(_: F.Type) {
        let xp = UnsafePointer(x.pointer(as: F.self)), gp = UnsafePointer(g.pointer(as: F.self))
        let dp = dx.pointer(as: F.self)
        c.kernel.parallelFor(outer * inner, grain: max(1, 8192 / max(1, n))) { range in
            for k in range {
                let o = k / inner, j = k - o * inner
                let base = o * n * inner + j
                let norm = LpNormKernel.norm(xp + base, n, stride: inner, p: p)
                guard norm != 0 else {
                    for i in 0..<n { dp[base + i * inner] = 0 }
                    continue
                }
                var gy = 0.0
                for i in 0..<n { let q = base + i * inner; gy += Double(gp[q]) * Double(xp[q]) / norm }
                for i in 0..<n {
                    let q = base + i * inner, v = Double(xp[q])
                    let d = p == 1 ? (v > 0 ? 1 : (v < 0 ? -1 : 0)) : v / norm
                    dp[q] = F((Double(gp[q]) - d * gy) / norm)
                }
            }
        }
    }
    if x.dtype == .double { go(Double.self) } else { go(Float.self) }
    return [dx]
}

/// VJP of MeanVarianceNormalization, `y = z / (σ + 1e-9)` with `z = x − mean`, `σ² = mean z²`
/// over `axes`: `dx = (g − mean g)/D − z · mean(g·z) / (σ·D²)`, `D = σ + 1e-9` (computed in
/// double, as the kernel is).
private func mvnGradient(_ c: GradientContext, _ gs: [NDArray?]) throws -> [NDArray?] {
    guard c.needs(0) else { return [nil] }
    let x = try c.input(0), y = try c.output(0)
    let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
    try NormGrad.check(x, g)
    let axes: [Int] = try c.attribute("axes", default: [0, 2, 3])
    let mask = try ReduceKernel.axisMask(axes, rank: x.rank)
    let k = c.kernel
    let xd = try castArray(x, to: .double, k), gd = try castArray(g, to: .double, k)
    func mean(_ a: NDArray) throws -> NDArray { try ReduceKernel.reduce(a, op: .mean, mask: mask, keepdims: true, k) }
    let mu = try mean(xd)
    let z = GradientMath.map(x.shape, [xd, mu], k) { $0[0] - $0[1] }
    let sigma = GradientMath.map(mu.shape, [try mean(GradientMath.map(x.shape, [z], k) { $0[0] * $0[0] })], k) { $0[0].squareRoot() }
    let gMean = try mean(gd)
    let gzMean = try mean(GradientMath.map(x.shape, [gd, z], k) { $0[0] * $0[1] })
    let dx = GradientMath.map(x.shape, [gd, z, gMean, gzMean, sigma], k) { v in
        let d = v[4] + 1e-9
        return (v[0] - v[2]) / d - (v[4] == 0 ? 0 : v[1] * v[3] / (v[4] * d * d))
    }
    return [try castArray(dx, to: x.dtype, k)]
}

func registerNormalizationGradients(_ r: inout GradientRegistry) {
    r.register(["LayerNormalization"]) { c, gs in try layerNormGradient(c, gs, rms: false) }
    r.register(["RMSNormalization"]) { c, gs in try layerNormGradient(c, gs, rms: true) }
    r.register(["GroupNormalization"]) { c, gs in try groupNormGradient(c, gs, instance: false) }
    r.register(["InstanceNormalization"]) { c, gs in try groupNormGradient(c, gs, instance: true) }
    r.register(["BatchNormalization"]) { c, gs in try batchNormGradient(c, gs) }
    r.register(["LpNormalization"]) { c, gs in try lpNormGradient(c, gs) }
    r.register(["MeanVarianceNormalization"]) { c, gs in try mvnGradient(c, gs) }
}
