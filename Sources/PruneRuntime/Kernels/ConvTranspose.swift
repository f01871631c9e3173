import PruneIR

// ConvTranspose over 1 to 3 spatial dimensions: one sgemm per (image, group) gives the columns
// W_gᵀ · X_g, which col2im scatters (adds) into the output; groups, strides, dilations, pads,
// auto_pad, output_padding and output_shape. float64 computes in float64; float16/bfloat16 in
// float32. The VJP (end of file) is im2col of the output's cotangent and two GEMMs.
func registerConvTransposeKernels(_ r: inout KernelRegistry) {
    for since in [1, 11, 22] {
        r.register("ConvTranspose", since: since) { info in
            if let t = info.inputType(0), !FloatBridge.supports(t) {
                throw KernelError.unsupported("ConvTranspose on \(t)")
            }
            return ConvTransposeKernel(
                window: try WindowAttributes(info),
                group: try info.attribute("group", default: 1),
                outputPadding: try info.attribute("output_padding", default: [Int]()),
                outputShape: try info.attribute("output_shape", as: [Int].self))
        }
    }
}

/// A transposed convolution with its attributes parsed.
final class ConvTransposeKernel: Kernel {
    let window: WindowAttributes
    let group: Int
    let outputPadding: [Int]
    let outputShape: [Int]?

    init(window: WindowAttributes, group: Int, outputPadding: [Int], outputShape: [Int]?) {
        self.window = window
        self.group = group
        self.outputPadding = outputPadding
        self.outputShape = outputShape
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), w = try inputs.required(1)
        let b = inputs.optional(2)
        guard x.rank >= 3, w.rank == x.rank else { throw KernelError("ConvTranspose input \(x.shape) and weights \(w.shape) do not fit") }
        if x.dtype == .double && w.dtype == .double && (b?.dtype ?? .double) == .double {
            return [try convTranspose(Double.self, x, w, b, ctx)]
        }
        let y = try convTranspose(Float.self, FloatBridge.toFloat(x, ctx), FloatBridge.toFloat(w, ctx),
                                  b.map { FloatBridge.toFloat($0, ctx) }, ctx)
        return [FloatBridge.fromFloat(y, to: x.dtype, ctx)]
    }

    /// Output spatial shape and begin pads.
    func geometry(input: [Int], kernel: [Int]) throws -> (output: [Int], strides: [Int], dilations: [Int], padsBegin: [Int]) {
        let r = input.count
        let (s, d, p) = try window.resolved(rank: r)
        let op = outputPadding.isEmpty ? [Int](repeating: 0, count: r) : outputPadding
        guard op.count == r else { throw KernelError("output_padding \(op) does not fit \(r) spatial dimensions") }
        var out = [Int](repeating: 0, count: r)
        var begin = [Int](repeating: 0, count: r)
        var target: [Int]? = nil
        if let outputShape {
            target = outputShape.count == r + 2 ? Array(outputShape.suffix(r)) : outputShape
            guard target!.count == r else { throw KernelError("output_shape \(outputShape) does not fit \(r) spatial dimensions") }
        } else if window.autoPad == "SAME_UPPER" || window.autoPad == "SAME_LOWER" {
            target = zip(input, s).map { $0 * $1 }
        }
        for i in 0..<r {
            let natural = s[i] * (input[i] - 1) + op[i] + (kernel[i] - 1) * d[i] + 1
            if let target {
                let total = natural - target[i]
                out[i] = target[i]
                // SAME_UPPER puts the extra padding at the end; otherwise at the beginning.
                // (Floor division: a negative total, an output larger than the natural one,
                // grows the output at the end, as the ONNX reference does.)
                let half = total >= 0 ? total / 2 : -ceilDiv(-total, 2)
                begin[i] = window.autoPad == "SAME_UPPER" ? half : total - half
            } else if window.autoPad == "VALID" {
                out[i] = natural
            } else {
                out[i] = natural - p[i] - p[r + i]
                begin[i] = p[i]
            }
            guard out[i] >= 0 else { throw KernelError("ConvTranspose output size \(out[i]) is negative") }
        }
        return (out, s, d, begin)
    }

    /// The window of a transposed convolution of an input shaped `x` by weights shaped `w`
    /// (checked to fit each other, the group and a bias of `biasCount` elements), and the
    /// output's spatial shape. The "small" side of the window relation is the input here:
    /// `out[i*s - p + k*d] += in[i]`.
    func layout(x: [Int], w: [Int], biasCount: Int?) throws -> (window: Window3D, output: [Int]) {
        let c = x[1]
        guard group > 0, c % group == 0, w[0] == c else {
            throw KernelError("ConvTranspose input \(x), weights \(w) and group \(group) do not fit")
        }
        let m = w[1] * group
        let spatial = Array(x.dropFirst(2))
        let kernel = window.kernelShape ?? Array(w.dropFirst(2))
        guard kernel == Array(w.dropFirst(2)) else { throw KernelError("kernel_shape \(kernel) differs from weights \(w)") }
        if let biasCount, biasCount != m { throw KernelError("ConvTranspose bias of \(biasCount) elements does not have \(m)") }
        let geo = try geometry(input: spatial, kernel: kernel)
        let g = try Window3D(input: geo.output, output: spatial, kernel: kernel, strides: geo.strides,
                             dilations: geo.dilations, padsBegin: geo.padsBegin)
        return (g, geo.output)
    }

    private func convTranspose<T: BLASElement>(_: T.Type, _ x: NDArray, _ w: NDArray, _ b: NDArray?, _ ctx: KernelContext) throws -> NDArray {
        let n = x.shape[0], c = x.shape[1]
        let (g, output) = try layout(x: x.shape, w: w.shape, biasCount: b?.count)
        let mg = w.shape[1], m = mg * group, cg = c / group
        let y = ctx.allocate(T.dtype, [n, m] + output)
        if y.count == 0 { return y }
        let px = x.pointer(as: T.self), pw = w.pointer(as: T.self), py = y.pointer(as: T.self)
        let pb = b?.pointer(as: T.self)
        let inSize = g.outSize, outSize = g.inSize, kSize = g.kernelSize
        let rows = mg * kSize
        let col = ctx.allocate(T.dtype, [rows, inSize])
        let pc = col.pointer(as: T.self)
        for i in 0..<n {
            for gi in 0..<group {
                // col [mg*k, inSize] = W_gᵀ [mg*k, cg] · X_g [cg, inSize]
                T.gemm(transA: true, transB: false, m: rows, n: inSize, k: cg, alpha: 1,
                       a: pw + gi * cg * rows, lda: rows, b: px + (i * c + gi * cg) * inSize, ldb: inSize,
                       beta: 0, c: pc, ldc: inSize, threads: ctx.threads)
                let dst = py + (i * m + gi * mg) * outSize
                ctx.parallelFor(mg, grain: max(1, 16384 / max(1, outSize * kSize))) { range in
                    for oc in range {
                        let bias = pb?[gi * mg + oc] ?? 0
                        ConvTransposeKernel.col2im(pc + oc * kSize * inSize, dst + oc * outSize, g, bias: bias)
                    }
                }
            }
        }
        return y
    }

    /// Adds the columns of one output channel (`kernelSize` rows of `small` size) into `out`,
    /// which is first set to `bias`.
    static func col2im<T: BLASElement>(_ col: UnsafeMutablePointer<T>, _ out: UnsafeMutablePointer<T>, _ g: Window3D, bias: T) {
        // Window3D here: i* = output (big) dims, o* = input (small) dims.
        out.update(repeating: bias, count: g.inSize)
        var q = col
        for kd in 0..<g.kd {
            for kh in 0..<g.kh {
                for kw in 0..<g.kw {
                    let off = kw * g.dw - g.pw
                    let (lo, hi) = g.columnRange(offset: off)
                    for od in 0..<g.od {
                        let zi = od * g.sd - g.pd + kd * g.dd
                        for oh in 0..<g.oh {
                            let yi = oh * g.sh - g.ph + kh * g.dh
                            let src = q + (od * g.oh + oh) * g.ow
                            if zi < 0 || zi >= g.id || yi < 0 || yi >= g.ih || lo >= hi { continue }
                            let r = out + (zi * g.ih + yi) * g.iw + off
                            if g.sw == 1 {
                                for x in lo..<hi { r[x] += src[x] }
                            } else {
                                let sw = g.sw
                                for x in lo..<hi { r[x * sw] += src[x] }
                            }
                        }
                    }
                    q += g.outSize
                }
            }
        }
    }
}

// MARK: Gradients

/// VJP of ConvTranspose, per image and group (`dcol` = im2col of the output's cotangent over
/// the same window, [m/group · kernel, in]): dX_g = W_g · dcol, dW_g += X_g · dcolᵀ, dB = dY
/// summed over images and positions. float32 and float64 compute in their own type.
func registerConvTransposeGradients(_ r: inout GradientRegistry) {
    r.register(["ConvTranspose"]) { c, gs in
        let x = try c.input(0), w = try c.input(1), y = try c.output(0)
        let gy = GradientMath.orZeros(gs[0], like: y, c.kernel)
        guard x.dtype == w.dtype, x.dtype == gy.dtype else {
            throw KernelError("ConvTranspose gradient: input \(x.dtype), weights \(w.dtype)")
        }
        let kernel = ConvTransposeKernel(
            window: try WindowAttributes(KernelBuildInfo(node: c.node, opset: c.opset)),
            group: try c.attribute("group", default: 1),
            outputPadding: try c.attribute("output_padding", default: [Int]()),
            outputShape: try c.attribute("output_shape", as: [Int].self))
        let (g, _) = try kernel.layout(x: x.shape, w: w.shape, biasCount: c.inputs.optional(2)?.count)
        let needs = (c.needs(0), c.needs(1), c.needs(2))
        let grads: (NDArray?, NDArray?, NDArray?)
        switch x.dtype {
        case .float: grads = ConvTransposeKernel.backward(Float.self, x: x, w: w, gy: gy, group: kernel.group, g: g, needs: needs, c.kernel)
        case .double: grads = ConvTransposeKernel.backward(Double.self, x: x, w: w, gy: gy, group: kernel.group, g: g, needs: needs, c.kernel)
        default: throw KernelError("ConvTranspose gradient on \(x.dtype) (float32 and float64 only)")
        }
        return [grads.0, grads.1, grads.2]
    }
}

extension ConvTransposeKernel {
    /// The cotangents of a transposed convolution's input, weights and bias (those `needs` asks
    /// for), given the output's cotangent `gy` and the window `g` (input = the output's spatial
    /// dims, output = `x`'s).
    static func backward<T: BLASElement>(_: T.Type, x: NDArray, w: NDArray, gy: NDArray, group: Int, g: Window3D,
                                         needs: (x: Bool, w: Bool, b: Bool), _ ctx: KernelContext) -> (NDArray?, NDArray?, NDArray?) {
        let n = x.shape[0], c = x.shape[1], mg = w.shape[1], m = mg * group, cg = c / group
        let small = g.outSize, big = g.inSize, kSize = g.kernelSize
        let rows = mg * kSize
        let dx = needs.x ? ctx.zeros(T.dtype, x.shape) : nil
        let dw = needs.w ? ctx.zeros(T.dtype, w.shape) : nil
        let db = needs.b ? ConvKernel.biasGradient(T.self, gy, ctx) : nil
        if x.count == 0 || gy.count == 0 || w.count == 0 || !(needs.x || needs.w) { return (dx, dw, db) }
        let px = x.pointer(as: T.self), pw = w.pointer(as: T.self), pg = gy.pointer(as: T.self)
        let dcolArray = ctx.allocate(T.dtype, [rows, small])
        let dcol = dcolArray.pointer(as: T.self)
        for i in 0..<n {
            for gi in 0..<group {
                let src = pg + (i * m + gi * mg) * big
                ctx.parallelFor(rows, grain: max(1, 32768 / max(1, small))) { range in
                    ConvKernel.im2col(src, dcol, g, rows: range)
                }
                if let dx {
                    // dX_g [cg, small] = W_g [cg, rows] · dcol [rows, small]
                    T.gemm(transA: false, transB: false, m: cg, n: small, k: rows, alpha: 1, a: pw + gi * cg * rows, lda: rows,
                           b: dcol, ldb: small, beta: 0, c: dx.pointer(as: T.self) + (i * c + gi * cg) * small, ldc: small, threads: ctx.threads)
                }
                if let dw {
                    // dW_g [cg, rows] += X_g [cg, small] · dcolᵀ [small, rows]
                    T.gemm(transA: false, transB: true, m: cg, n: rows, k: small, alpha: 1, a: px + (i * c + gi * cg) * small, lda: small,
                           b: dcol, ldb: small, beta: 1, c: dw.pointer(as: T.self) + gi * cg * rows, ldc: rows, threads: ctx.threads)
                }
            }
        }
        withExtendedLifetime(dcolArray) {}
        return (dx, dw, db)
    }
}
