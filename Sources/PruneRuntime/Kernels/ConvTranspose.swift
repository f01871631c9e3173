import PruneIR

// ConvTranspose over 1 to 3 spatial dimensions: one sgemm per (image, group) gives the columns
// W_gᵀ · X_g, which col2im scatters (adds) into the output; groups, strides, dilations, pads,
// auto_pad, output_padding and output_shape. float16/float64 are computed in float32.
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
        let y = try convTranspose(FloatBridge.toFloat(x, ctx), FloatBridge.toFloat(w, ctx),
                                  b.map { FloatBridge.toFloat($0, ctx) }, ctx)
        return [FloatBridge.fromFloat(y, to: x.dtype, ctx)]
    }

    /// Output spatial shape and begin pads.
    private func geometry(input: [Int], kernel: [Int]) throws -> (output: [Int], strides: [Int], dilations: [Int], padsBegin: [Int]) {
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

    private func convTranspose(_ x: NDArray, _ w: NDArray, _ b: NDArray?, _ ctx: KernelContext) throws -> NDArray {
        let n = x.shape[0], c = x.shape[1]
        guard group > 0, c % group == 0, w.shape[0] == c else {
            throw KernelError("ConvTranspose input \(x.shape), weights \(w.shape) and group \(group) do not fit")
        }
        let mg = w.shape[1], m = mg * group, cg = c / group
        let spatial = Array(x.shape.dropFirst(2))
        let kernel = window.kernelShape ?? Array(w.shape.dropFirst(2))
        guard kernel == Array(w.shape.dropFirst(2)) else { throw KernelError("kernel_shape \(kernel) differs from weights \(w.shape)") }
        if let b, b.count != m { throw KernelError("ConvTranspose bias \(b.shape) does not have \(m) elements") }
        let geo = try geometry(input: spatial, kernel: kernel)
        // The "small" side of the window relation is the input here: out[i*s - p + k*d] += in[i].
        let g = try Window3D(input: geo.output, output: spatial, kernel: kernel, strides: geo.strides,
                             dilations: geo.dilations, padsBegin: geo.padsBegin)
        let y = ctx.allocate(.float, [n, m] + geo.output)
        if y.count == 0 { return y }
        let px = x.pointer(as: Float.self), pw = w.pointer(as: Float.self), py = y.pointer(as: Float.self)
        let pb = b?.pointer(as: Float.self)
        let inSize = g.outSize, outSize = g.inSize, kSize = g.kernelSize
        let rows = mg * kSize
        let col = ctx.allocate(.float, [rows, inSize])
        let pc = col.pointer(as: Float.self)
        for i in 0..<n {
            for gi in 0..<group {
                // col [mg*k, inSize] = W_gᵀ [mg*k, cg] · X_g [cg, inSize]
                BLAS.sgemm(transA: true, transB: false, m: rows, n: inSize, k: cg,
                           a: pw + gi * cg * rows, lda: rows, b: px + (i * c + gi * cg) * inSize, ldb: inSize,
                           beta: 0, c: pc, ldc: inSize)
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
    static func col2im(_ col: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ g: Window3D, bias: Float) {
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
