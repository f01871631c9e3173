import Foundation
import PruneIR

// Pooling over 1 to 3 spatial dimensions: MaxPool (with Indices, storage_order, ceil_mode,
// dilations), AveragePool (count_include_pad), LpPool, and their Global variants.
// MaxPool works on every element type it accepts directly; the averaging pools compute in
// float32 (float16/float64 are converted). Channels run in parallel. VJPs (end of file) for all
// of them: float32 and float64, the window ranges of the forward pass.
func registerPoolKernels(_ r: inout KernelRegistry) {
    for since in [1, 8, 10, 11, 12, 22] {
        r.register("MaxPool", since: since) { info in try PoolKernel(info, kind: .max) }
    }
    for since in [1, 7, 10, 11, 19, 22] {
        r.register("AveragePool", since: since) { info in try PoolKernel(info, kind: .average) }
    }
    for since in [1, 2, 11, 18, 22] {
        r.register("LpPool", since: since) { info in try PoolKernel(info, kind: .lp(try PoolKernel.pAttribute(info))) }
    }
    for since in [1, 22] {
        r.register("GlobalMaxPool", since: since) { info in try PoolKernel(info, kind: .max, global: true) }
        r.register("GlobalAveragePool", since: since) { info in try PoolKernel(info, kind: .average, global: true) }
    }
    for since in [1, 2, 22] {
        r.register("GlobalLpPool", since: since) { info in try PoolKernel(info, kind: .lp(try PoolKernel.pAttribute(info)), global: true) }
    }
}

/// One pooling node with its attributes parsed.
final class PoolKernel: Kernel {
    enum Kind: Equatable {
        case max
        case average
        case lp(Int)
    }

    let kind: Kind
    let global: Bool
    let window: WindowAttributes
    let ceilMode: Bool
    let countIncludePad: Bool
    let columnMajorIndices: Bool
    let wantIndices: Bool

    init(_ info: KernelBuildInfo, kind: Kind, global: Bool = false) throws {
        self.kind = kind
        self.global = global
        window = global ? WindowAttributes() : try WindowAttributes(info)
        ceilMode = try info.attribute("ceil_mode", default: 0) != 0
        countIncludePad = try info.attribute("count_include_pad", default: 0) != 0
        columnMajorIndices = try info.attribute("storage_order", default: 0) != 0
        wantIndices = info.node.outputs.count > 1 && !info.node.outputs[1].name.isEmpty
        if !global && window.kernelShape == nil { throw KernelError("\(info.node.opType.name) needs kernel_shape") }
        if let t = info.inputType(0) {
            let ok = kind == .max ? [DType.float, .double, .float16, .int8, .uint8].contains(t) : FloatBridge.supports(t) && t != .bfloat16
            if !ok { throw KernelError.unsupported("\(info.node.opType.name) on \(t)") }
        }
    }

    /// LpPool's `p`: a float in opset 1, an int from opset 2.
    static func pAttribute(_ info: KernelBuildInfo) throws -> Int {
        var p = 2
        if let v = try? info.attribute("p", as: Int.self) { p = v } else if let v = try? info.attribute("p", as: Float.self) { p = Int(v) }
        guard p > 0 else { throw KernelError("LpPool p must be positive, got \(p)") }
        return p
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0)
        let channels = x.shape[0] * x.shape[1]
        let (g, ranges, outShape) = try layout(x.shape)
        if global { return [try globalPool(x, outShape, ctx)] }
        if kind == .max {
            let y = ctx.allocate(x.dtype, outShape)
            let indices = wantIndices ? ctx.allocate(.int64, outShape) : nil
            let pi = indices?.pointer(as: Int64.self)
            switch x.dtype {
            case .float: maxPool(x.pointer(as: Float.self), y.pointer(as: Float.self), pi, channels, g, ranges, -.infinity, ctx)
            case .double: maxPool(x.pointer(as: Double.self), y.pointer(as: Double.self), pi, channels, g, ranges, -.infinity, ctx)
            case .float16: maxPool(x.pointer(as: Float16.self), y.pointer(as: Float16.self), pi, channels, g, ranges, -.infinity, ctx)
            case .int8: maxPool(x.pointer(as: Int8.self), y.pointer(as: Int8.self), pi, channels, g, ranges, .min, ctx)
            case .uint8: maxPool(x.pointer(as: UInt8.self), y.pointer(as: UInt8.self), pi, channels, g, ranges, .min, ctx)
            default: throw KernelError("MaxPool does not support \(x.dtype)")
            }
            return wantIndices ? [y, indices] : [y]
        }
        guard FloatBridge.supports(x.dtype) else { throw KernelError("pooling does not support \(x.dtype)") }
        let xf = FloatBridge.toFloat(x, ctx)
        let y = ctx.allocate(.float, outShape)
        averageOrLp(xf.pointer(as: Float.self), y.pointer(as: Float.self), channels, g, ranges, ctx)
        return [FloatBridge.fromFloat(y, to: x.dtype, ctx)]
    }

    /// The window over an input shaped `shape` (global pools see the spatial dimensions as one,
    /// so any rank works), its per-dimension ranges, and the output shape.
    func layout(_ shape: [Int]) throws -> (window: Window3D, ranges: PoolRanges, outShape: [Int]) {
        guard shape.count >= 3 else { throw KernelError("pool input \(shape) needs a batch, a channel and spatial dimensions") }
        let spatial = global ? [shape.dropFirst(2).reduce(1, *)] : Array(shape.dropFirst(2))
        let kernel = global ? spatial : window.kernelShape!
        let geo: (output: [Int], strides: [Int], dilations: [Int], pads: [Int])
        if global {
            let r = spatial.count
            geo = ([Int](repeating: 1, count: r), [Int](repeating: 1, count: r), [Int](repeating: 1, count: r), [Int](repeating: 0, count: 2 * r))
        } else {
            geo = try window.outputGeometry(input: spatial, kernel: kernel, ceilMode: ceilMode)
        }
        let r = spatial.count
        let g = try Window3D(input: spatial, output: geo.output, kernel: kernel, strides: geo.strides,
                             dilations: geo.dilations, padsBegin: Array(geo.pads.prefix(r)))
        let outShape = Array(shape.prefix(2)) + (global ? [Int](repeating: 1, count: shape.count - 2) : geo.output)
        return (g, PoolRanges(g, padsEnd: Array(geo.pads.suffix(r))), outShape)
    }

    /// Per output position along each dimension: the kernel offsets whose input lies inside the
    /// input (`lo..<hi`), and how many lie inside the padded input (for count_include_pad).
    struct PoolRanges {
        /// Kernel offsets `lo..<hi` inside the input; `padded` of them inside the padded input.
        typealias Span = (lo: Int, hi: Int, padded: Int)
        var d: [Span]
        var h: [Span]
        var w: [Span]

        init(_ g: Window3D, padsEnd: [Int]) {
            func dim(_ out: Int, _ inp: Int, _ k: Int, _ s: Int, _ dl: Int, _ pb: Int, _ pe: Int) -> [Span] {
                (0..<out).map { o in
                    let start = o * s - pb
                    let lo = min(k, max(0, ceilDiv(-start, dl)))
                    let hi = max(lo, min(k, ceilDiv(inp - start, dl)))
                    let plo = min(k, max(0, ceilDiv(-pb - start, dl)))
                    let phi = max(plo, min(k, ceilDiv(inp + pe - start, dl)))
                    return (lo, hi, phi - plo)
                }
            }
            let r = padsEnd.count
            func pe(_ i: Int) -> Int { i - (3 - r) >= 0 ? padsEnd[i - (3 - r)] : 0 }
            d = dim(g.od, g.id, g.kd, g.sd, g.dd, g.pd, pe(0))
            h = dim(g.oh, g.ih, g.kh, g.sh, g.dh, g.ph, pe(1))
            w = dim(g.ow, g.iw, g.kw, g.sw, g.dw, g.pw, pe(2))
        }
    }

    /// The window of one output position: where it starts in the input (`z0`, `y0`, `x0`, before
    /// the kernel offsets; negative in the begin padding) and its spans per dimension.
    struct OutputWindow {
        var z0: Int, y0: Int, x0: Int
        var d: PoolRanges.Span, h: PoolRanges.Span, w: PoolRanges.Span

        /// No element of the window lies inside the input.
        var isEmpty: Bool { d.lo >= d.hi || h.lo >= h.hi || w.lo >= w.hi }

        /// Calls `body(offset)` for each window element inside the input, in window order, with
        /// its offset in one channel of the input.
        @inline(__always)
        func forEachInput(_ g: Window3D, _ body: (Int) -> Void) {
            for kd in d.lo..<d.hi {
                let z = z0 + kd * g.dd
                for kh in h.lo..<h.hi {
                    let row = (z * g.ih + y0 + kh * g.dh) * g.iw + x0
                    for kw in w.lo..<w.hi { body(row + kw * g.dw) }
                }
            }
        }

        /// The first maximum of the window over channel `s` and its offset (`lowest` and -1 for
        /// an empty window): MaxPool's output, the element its Indices output names and its VJP
        /// sends the cotangent to.
        @inline(__always)
        func firstMax<T: Comparable>(_ s: UnsafeMutablePointer<T>, _ g: Window3D, lowest: T) -> (value: T, offset: Int) {
            var best = lowest
            var bi = -1
            forEachInput(g) { e in
                let v = s[e]
                if bi < 0 || v > best {
                    best = v
                    bi = e
                }
            }
            return (best, bi)
        }
    }

    /// Calls `body(window)` for each output position of one channel, in output order.
    @inline(__always)
    static func forEachWindow(_ g: Window3D, _ rd: UnsafeBufferPointer<PoolRanges.Span>, _ rh: UnsafeBufferPointer<PoolRanges.Span>,
                              _ rw: UnsafeBufferPointer<PoolRanges.Span>, _ body: (OutputWindow) -> Void) {
        for od in 0..<g.od {
            let z0 = od * g.sd - g.pd
            for oh in 0..<g.oh {
                let y0 = oh * g.sh - g.ph
                for ow in 0..<g.ow {
                    body(OutputWindow(z0: z0, y0: y0, x0: ow * g.sw - g.pw, d: rd[od], h: rh[oh], w: rw[ow]))
                }
            }
        }
    }

    private func maxPool<T: Comparable>(_ px: UnsafeMutablePointer<T>, _ py: UnsafeMutablePointer<T>, _ pi: UnsafeMutablePointer<Int64>?,
                                        _ channels: Int, _ g: Window3D, _ ranges: PoolRanges, _ lowest: T, _ ctx: KernelContext) {
        if pi == nil, T.self == Float.self {
            // float32: the vector loop of CKernels (strides 1 and 2 on AVX-512, a 3x3/2 stem pool
            // over 64 x 112 x 112 took 1 ms in the generic loop).
            poolRows(px, py, channels, g, ranges, initial: lowest, ctx, accumulate: { row, src, lo, hi, sw in
                let r = UnsafeMutableRawPointer(row + lo).assumingMemoryBound(to: Float.self)
                let s = UnsafeRawPointer(src + lo * sw).assumingMemoryBound(to: Float.self)
                VectorKernels.maxInto(r, s, count: hi - lo, stride: sw)
            }, finish: { _, _, _ in })
            return
        }
        if pi == nil {
            poolRows(px, py, channels, g, ranges, initial: lowest, ctx, accumulate: { row, src, lo, hi, sw in
                // Branch-free max (a select, vectorizable); stride 2 is spelled out so the
                // compiler sees a constant stride.
                if sw == 1 {
                    for x in lo..<hi { row[x] = Swift.max(row[x], src[x]) }
                } else if sw == 2 {
                    for x in lo..<hi { row[x] = Swift.max(row[x], src[2 * x]) }
                } else {
                    for x in lo..<hi { row[x] = Swift.max(row[x], src[x * sw]) }
                }
            }, finish: { _, _, _ in })
            return
        }
        let inSize = g.inSize, outSize = g.outSize
        let columnMajor = columnMajorIndices
        ranges.d.withUnsafeBufferPointer { rd in
        ranges.h.withUnsafeBufferPointer { rh in
        ranges.w.withUnsafeBufferPointer { rw in
            ctx.parallelFor(channels, grain: max(1, 8192 / max(1, outSize * g.kernelSize))) { range in
                for ch in range {
                    let s = px + ch * inSize
                    var q = py + ch * outSize
                    var qi = pi.map { $0 + ch * outSize }
                    PoolKernel.forEachWindow(g, rd, rh, rw) { window in
                        let (best, bi) = window.firstMax(s, g, lowest: lowest)
                        q.pointee = best
                        q += 1
                        if let p = qi {
                            var idx = max(bi, 0)
                            if columnMajor {
                                let z = idx / (g.ih * g.iw), yy = (idx / g.iw) % g.ih, xx = idx % g.iw
                                idx = (xx * g.ih + yy) * g.id + z
                            }
                            p.pointee = Int64(ch * inSize + idx)
                            qi = p + 1
                        }
                    }
                }
            }
        }}}
    }

    /// The window loops of the pools without indices, one output row at a time: each kernel
    /// column adds a shifted input row into the output row (`accumulate(row, src, lo, hi, sw)`
    /// over output columns `lo..<hi`, reading `src[x * sw]`), so the inner loops are long and
    /// branch-free. `finish(row, od, oh)` then turns the row into its final values.
    @inline(__always)
    private func poolRows<T>(_ px: UnsafeMutablePointer<T>, _ py: UnsafeMutablePointer<T>, _ channels: Int, _ g: Window3D,
                             _ ranges: PoolRanges, initial: T, _ ctx: KernelContext,
                             accumulate: (UnsafeMutablePointer<T>, UnsafeMutablePointer<T>, Int, Int, Int) -> Void,
                             finish: (UnsafeMutablePointer<T>, Int, Int) -> Void) {
        let inSize = g.inSize, outSize = g.outSize
        let cols = (0..<g.kw).map { kw -> (off: Int, lo: Int, hi: Int) in
            let off = kw * g.dw - g.pw
            let (lo, hi) = g.columnRange(offset: off)
            return (off, lo, hi)
        }
        cols.withUnsafeBufferPointer { cb in
        ranges.d.withUnsafeBufferPointer { rd in
        ranges.h.withUnsafeBufferPointer { rh in
            ctx.parallelFor(channels, grain: max(1, 8192 / max(1, outSize * g.kernelSize))) { range in
                for ch in range {
                    let s = px + ch * inSize
                    for od in 0..<g.od {
                        let z0 = od * g.sd - g.pd
                        let (dlo, dhi, _) = rd[od]
                        for oh in 0..<g.oh {
                            let y0 = oh * g.sh - g.ph
                            let (hlo, hhi, _) = rh[oh]
                            let row = py + ch * outSize + (od * g.oh + oh) * g.ow
                            row.update(repeating: initial, count: g.ow)
                            for kd in dlo..<dhi {
                                let z = z0 + kd * g.dd
                                for kh in hlo..<hhi {
                                    let r = s + (z * g.ih + y0 + kh * g.dh) * g.iw
                                    for c in cb where c.lo < c.hi { accumulate(row, r + c.off, c.lo, c.hi, g.sw) }
                                }
                            }
                            finish(row, od, oh)
                        }
                    }
                }
            }
        }}}
    }

    private func averageOrLp(_ px: UnsafeMutablePointer<Float>, _ py: UnsafeMutablePointer<Float>,
                             _ channels: Int, _ g: Window3D, _ ranges: PoolRanges, _ ctx: KernelContext) {
        var p = 0
        if case .lp(let pv) = kind { p = pv }
        let pf = Float(p)
        let includePad = countIncludePad
        // Divisors: per output column, and per (od, oh) row.
        let colCount = ranges.w.map { includePad ? $0.padded : $0.hi - $0.lo }
        let rowCountD = ranges.d.map { includePad ? $0.padded : $0.hi - $0.lo }
        let rowCountH = ranges.h.map { includePad ? $0.padded : $0.hi - $0.lo }
        let accumulate: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int) -> Void
        switch p {
        case 0:
            accumulate = { row, src, lo, hi, sw in
                if sw == 1 {
                    for x in lo..<hi { row[x] += src[x] }
                } else if sw == 2 {
                    for x in lo..<hi { row[x] += src[2 * x] }
                } else {
                    for x in lo..<hi { row[x] += src[x * sw] }
                }
            }
        case 1:
            accumulate = { row, src, lo, hi, sw in for x in lo..<hi { row[x] += abs(src[x * sw]) } }
        case 2:
            accumulate = { row, src, lo, hi, sw in for x in lo..<hi { let v = src[x * sw]; row[x] += v * v } }
        default:
            accumulate = { row, src, lo, hi, sw in for x in lo..<hi { row[x] += powf(abs(src[x * sw]), pf) } }
        }
        colCount.withUnsafeBufferPointer { cc in
            poolRows(px, py, channels, g, ranges, initial: Float(0), ctx, accumulate: accumulate, finish: { row, od, oh in
                switch p {
                case 0:
                    let rc = rowCountD[od] * rowCountH[oh]
                    for x in 0..<g.ow {
                        let n = rc * cc[x]
                        row[x] = n > 0 ? row[x] / Float(n) : 0
                    }
                case 1: break
                case 2: for x in 0..<g.ow { row[x] = row[x].squareRoot() }
                default: for x in 0..<g.ow { row[x] = powf(row[x], 1 / pf) }
                }
            })
        }
    }

    /// GlobalMaxPool / GlobalAveragePool / GlobalLpPool: one reduction per channel.
    private func globalPool(_ x: NDArray, _ outShape: [Int], _ ctx: KernelContext) throws -> NDArray {
        let channels = x.shape[0] * x.shape[1]
        let size = x.shape.dropFirst(2).reduce(1, *)
        if kind == .max {
            let y = ctx.allocate(x.dtype, outShape)
            func reduce<T: Comparable>(_: T.Type, _ lowest: T) {
                let s = x.pointer(as: T.self), d = y.pointer(as: T.self)
                for c in 0..<channels {
                    var m = lowest
                    let r = s + c * size
                    for i in 0..<size where r[i] > m { m = r[i] }
                    d[c] = m
                }
            }
            switch x.dtype {
            case .float: reduce(Float.self, -.infinity)
            case .double: reduce(Double.self, -.infinity)
            case .float16: reduce(Float16.self, -.infinity)
            case .int8: reduce(Int8.self, .min)
            case .uint8: reduce(UInt8.self, .min)
            default: throw KernelError("GlobalMaxPool does not support \(x.dtype)")
            }
            return y
        }
        let xf = FloatBridge.toFloat(x, ctx)
        let y = ctx.allocate(.float, outShape)
        let s = xf.pointer(as: Float.self), d = y.pointer(as: Float.self)
        var p = 0
        if case .lp(let pv) = kind { p = pv }
        let pf = Float(p)
        ctx.parallelFor(channels, grain: max(1, 16384 / max(1, size))) { range in
            for c in range {
                let r = s + c * size
                var acc: Float = 0
                switch p {
                case 0: for i in 0..<size { acc += r[i] }; acc /= Float(max(size, 1))
                case 1: for i in 0..<size { acc += abs(r[i]) }
                case 2: for i in 0..<size { acc += r[i] * r[i] }; acc = acc.squareRoot()
                default: for i in 0..<size { acc += powf(abs(r[i]), pf) }; acc = powf(acc, 1 / pf)
                }
                d[c] = acc
            }
        }
        return FloatBridge.fromFloat(y, to: x.dtype, ctx)
    }
}

// MARK: Gradients

/// VJPs of the pools, one channel per task: MaxPool sends each output's cotangent to the first
/// maximum of its window (the element the forward pass picks; the Indices output takes none),
/// AveragePool spreads it over the window divided by the forward divisor (count_include_pad,
/// ceil_mode), LpPool multiplies by ∂y/∂x = sign(x)·|x|^(p-1) / y^(p-1) (zero where y is 0);
/// the Global variants treat all spatial positions as one window.
func registerPoolGradients(_ r: inout GradientRegistry) {
    let ops: [(String, Bool)] = [("MaxPool", false), ("AveragePool", false), ("LpPool", false),
                                 ("GlobalMaxPool", true), ("GlobalAveragePool", true), ("GlobalLpPool", true)]
    for (op, global) in ops {
        r.register([op]) { c, gs in
            let info = KernelBuildInfo(node: c.node, opset: c.opset)
            let kind: PoolKernel.Kind = op.hasSuffix("MaxPool") ? .max : op.hasSuffix("AveragePool") ? .average : .lp(try PoolKernel.pAttribute(info))
            let pool = try PoolKernel(info, kind: kind, global: global)
            let x = try c.input(0), y = try c.output(0)
            let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
            guard c.needs(0) else { return [nil] }
            switch x.dtype {
            case .float: return [try pool.backward(Float.self, x, y, g, c.kernel)]
            case .double: return [try pool.backward(Double.self, x, y, g, c.kernel)]
            default: throw KernelError("\(op) gradient on \(x.dtype) (float32 and float64 only)")
            }
        }
    }
}

extension PoolKernel {
    /// The cotangent of the input `x`, given the output `y` and its cotangent `gy`.
    fileprivate func backward<T: BinaryFloatingPoint & TensorElement>(_: T.Type, _ x: NDArray, _ y: NDArray, _ gy: NDArray,
                                                                      _ ctx: KernelContext) throws -> NDArray {
        let (g, ranges, _) = try layout(x.shape)
        let channels = x.shape[0] * x.shape[1]
        let dx = ctx.zeros(T.dtype, x.shape)
        if x.count == 0 || gy.count == 0 { return dx }
        let px = x.pointer(as: T.self), py = y.pointer(as: T.self), pg = gy.pointer(as: T.self), pd = dx.pointer(as: T.self)
        let inSize = g.inSize, outSize = g.outSize
        let kind = self.kind, includePad = countIncludePad
        var p = 0
        if case .lp(let pv) = kind { p = pv }
        // ∂y/∂x of an Lp pool for input value `v` and output `out`.
        @inline(__always) func lpDerivative(_ v: T, _ out: T) -> T {
            if p == 1 { return v > 0 ? 1 : v < 0 ? -1 : 0 }
            if out == 0 { return 0 }
            if p == 2 { return v / out }
            let a = Double(abs(v)), o = Double(out)
            return T((v < 0 ? -1 : 1) * Foundation.pow(a / o, Double(p - 1)))
        }
        ranges.d.withUnsafeBufferPointer { rd in
        ranges.h.withUnsafeBufferPointer { rh in
        ranges.w.withUnsafeBufferPointer { rw in
            ctx.parallelFor(channels, grain: max(1, 8192 / max(1, outSize * g.kernelSize))) { range in
                for ch in range {
                    let s = px + ch * inSize, d = pd + ch * inSize
                    var o = ch * outSize
                    PoolKernel.forEachWindow(g, rd, rh, rw) { window in
                        defer { o += 1 }
                        let gv = pg[o]
                        if gv == 0 || window.isEmpty { return }
                        switch kind {
                        case .max:
                            d[window.firstMax(s, g, lowest: -T.infinity).offset] += gv
                        case .average:
                            let (wd, wh, ww) = (window.d, window.h, window.w)
                            let n = includePad ? wd.padded * wh.padded * ww.padded : (wd.hi - wd.lo) * (wh.hi - wh.lo) * (ww.hi - ww.lo)
                            let v = gv / T(max(n, 1))
                            window.forEachInput(g) { d[$0] += v }
                        case .lp:
                            let out = py[o]
                            window.forEachInput(g) { e in d[e] += gv * lpDerivative(s[e], out) }
                        }
                    }
                }
            }
        }}}
        return dx
    }
}
