import Foundation
import PruneIR

// Conv over 1 to 3 spatial dimensions: groups, strides, dilations, pads and auto_pad, bias.
// float32 is computed as im2col + one sgemm per (image, group); a 1x1 stride-1 unpadded
// convolution is a plain GEMM on the input; depthwise convolutions (one input channel per group)
// use a direct loop. float64 is computed in float64 (im2col + dgemm); float16 in float32.
// The VJP (end of file) is im2col/col2im around two GEMMs per (image, group).
func registerConvKernels(_ r: inout KernelRegistry) {
    for since in [1, 11, 22] {
        r.register("Conv", since: since) { info in
            if let t = info.inputType(0), !FloatBridge.supports(t) {
                throw KernelError.unsupported("Conv on \(t)")
            }
            let kernel = ConvKernel(window: try WindowAttributes(info), group: try info.attribute("group", default: 1),
                                    constantInputs: (0..<3).map { info.constantInput($0) != nil })
            if ConvKernel.vectorGemm, let t = info.constantInput(1), FloatBridge.supports(t.dtype), t.dtype != .double,
                let w = try? NDArray(tensor: t)
            {
                kernel.prepack(w)
            }
            return kernel
        }
    }
}

/// A convolution with its attributes parsed.
final class ConvKernel: Kernel {
    let window: WindowAttributes
    let group: Int

    /// Constant weights packed for `VectorKernels.gemmRows` on the first run that needs them (all
    /// groups, each `prepackedCount` floats), with the weights' shape they were packed from.
    private var prepacked: UnsafeMutablePointer<Float>?
    private var prepackedCount = 0
    private var prepackedShape: [Int] = []
    /// Bytes of `prepacked`, taken from ``ConstantCopyBudget``.
    private var prepackedBytes = 0
    /// Constant weights waiting to be packed: packing on first use means a kernel that never runs
    /// (the node-by-node plan's, when plain runs take the fused one) holds no packed copy.
    private var pending: NDArray?
    private let packLock = NSLock()

    /// float32 copies of constant float16/bfloat16 weights and bias (nil for inputs that are not constant).
    private let widened: [WidenedConstant?]

    init(window: WindowAttributes, group: Int, constantInputs: [Bool] = []) {
        widened = (0..<3).map { $0 < constantInputs.count && constantInputs[$0] ? WidenedConstant() : nil }
        self.window = window
        self.group = group
    }

    deinit {
        prepacked?.deallocate()
        ConstantCopyBudget.release(prepackedBytes)
    }

    /// Marks constant weights `w` ([m, c/group, kernel...]; float32, or float16/bfloat16 widened
    /// when packed) to be packed once, on the first run, for the vector GEMM path.
    func prepack(_ w: NDArray) {
        guard FloatBridge.supports(w.dtype), w.dtype != .double, w.rank >= 3, group > 0, w.shape[0] % group == 0, w.count > 0
        else { return }
        pending = w
        prepackedShape = w.shape
    }

    /// The packed weights for weights shaped `shape`, packing the pending constant on first use.
    private func packedWeights(for shape: [Int]) -> UnsafeMutablePointer<Float>? {
        guard shape == prepackedShape else { return nil }
        packLock.lock()
        defer { packLock.unlock() }
        if prepacked == nil, let constant = pending {
            let mg = constant.shape[0] / group, kRows = constant.count / constant.shape[0]
            let count = VectorKernels.packedWeightsCount(m: mg, k: kRows)
            // Past the budget the weights are not packed: the kernel packs per call.
            guard ConstantCopyBudget.reserve(group * count * MemoryLayout<Float>.stride) else {
                pending = nil
                prepackedShape = []
                return nil
            }
            prepackedBytes = group * count * MemoryLayout<Float>.stride
            let w = constant.dtype == .float ? constant : FloatBridge.ownedFloat(constant)
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: group * count)
            let pw = w.pointer(as: Float.self)
            for gi in 0..<group {
                VectorKernels.packWeights(m: mg, k: kRows, pw + gi * mg * kRows, ldw: kRows, into: buf + gi * count)
            }
            prepacked = buf
            prepackedCount = count
            pending = nil
        }
        return prepacked
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let x = try inputs.required(0), w = try inputs.required(1)
        let b = inputs.optional(2)
        guard x.rank >= 3, w.rank == x.rank else { throw KernelError("Conv input \(x.shape) and weights \(w.shape) do not fit") }
        if x.dtype == .double && w.dtype == .double && (b?.dtype ?? .double) == .double {
            return [try convGEMM(Double.self, x, w, b, ctx)]
        }
        func wide(_ a: NDArray, _ i: Int) -> NDArray { widened[i]?.float(a, ctx) ?? FloatBridge.toFloat(a, ctx) }
        let y = try conv(wide(x, 0), wide(w, 1), b.map { wide($0, 2) }, ctx)
        return [FloatBridge.fromFloat(y, to: x.dtype, ctx)]
    }

    /// The window of a convolution of an input shaped `x` by weights shaped `w` (checked to
    /// fit each other, the group and a bias of `biasCount` elements): Window3D (input = `x`'s
    /// spatial dimensions), the output's spatial shape, and the end pads.
    func geometry(x: [Int], w: [Int], biasCount: Int?) throws -> (window: Window3D, output: [Int], padsEnd: [Int]) {
        let c = x[1], m = w[0]
        let spatial = Array(x.dropFirst(2))
        let kernel = window.kernelShape ?? Array(w.dropFirst(2))
        guard group > 0, c % group == 0, m % group == 0, w[1] == c / group else {
            throw KernelError("Conv input \(x), weights \(w) and group \(group) do not fit")
        }
        guard kernel == Array(w.dropFirst(2)) else { throw KernelError("kernel_shape \(kernel) differs from weights \(w)") }
        if let biasCount, biasCount != m { throw KernelError("Conv bias of \(biasCount) elements does not have \(m)") }
        let geo = try window.outputGeometry(input: spatial, kernel: kernel)
        let g = try Window3D(input: spatial, output: geo.output, kernel: kernel, strides: geo.strides,
                             dilations: geo.dilations, padsBegin: Array(geo.pads.prefix(spatial.count)))
        return (g, geo.output, Array(geo.pads.suffix(spatial.count)))
    }

    /// Whether the window is a 1x1, stride-1, unpadded one: the im2col matrix is the input itself.
    static func isPointwise(_ g: Window3D, padsEnd: [Int]) -> Bool {
        g.kernelSize == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 && g.pd == 0 && g.ph == 0 && g.pw == 0
            && padsEnd.allSatisfy { $0 == 0 }
    }

    /// The float32 convolution, with `residual` (shaped as the output) added and a clamp at 0
    /// after when asked: inside the GEMM where it writes the output directly, else in one pass.
    private func conv(_ x: NDArray, _ w: NDArray, _ b: NDArray?, residual: NDArray? = nil, relu: Bool = false,
                      _ ctx: KernelContext) throws -> NDArray {
        let n = x.shape[0], c = x.shape[1], m = w.shape[0]
        let (g, output, padsEnd) = try geometry(x: x.shape, w: w.shape, biasCount: b?.count)
        let y = ctx.allocate(.float, [n, m] + output)
        if y.count == 0 { return y }
        let px = x.pointer(as: Float.self), pw = w.pointer(as: Float.self), py = y.pointer(as: Float.self)
        let pb = b?.pointer(as: Float.self)
        let pr = residual.map { UnsafePointer($0.pointer(as: Float.self)) }
        let cg = c / group

        if cg == 1 {
            depthwise(px, pw, pb, py, n: n, c: c, m: m, g: g, ctx)
        } else if ConvKernel.vectorGemm {
            convRows(px, pw, pb, py, n: n, c: c, m: m, g: g, padsEnd: padsEnd,
                     prepacked: packedWeights(for: w.shape), residual: pr, relu: relu, ctx)
            return y
        } else {
            ConvKernel.im2colGEMM(px, pw, pb, py, n: n, c: c, m: m, group: group, g: g,
                                  pointwise: ConvKernel.isPointwise(g, padsEnd: padsEnd), ctx)
        }
        if pr != nil || relu { ConvKernel.applyEpilogue(py, residual: pr, relu: relu, count: y.count, ctx) }
        return y
    }

    /// `y[i] = max(y[i] + residual[i], 0)` (without the residual when nil, without the clamp
    /// when `relu` is false) for `count` floats.
    static func applyEpilogue(_ y: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, relu: Bool, count: Int,
                              _ ctx: KernelContext) {
        ctx.parallelFor(count, grain: elementwiseGrain) { range in
            let lo = range.lowerBound
            ConvKernel.addAndClamp(y + lo, residual: residual.map { $0 + lo }, relu: relu, count: range.count)
        }
    }

    /// ``applyEpilogue(_:residual:relu:count:_:)`` on the calling thread.
    @inline(__always)
    static func addAndClamp(_ y: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, relu: Bool, count: Int) {
        if let r = residual {
            if relu { for e in 0..<count { y[e] = max(y[e] + r[e], 0) } } else { for e in 0..<count { y[e] += r[e] } }
        } else if relu {
            for e in 0..<count { y[e] = max(y[e], 0) }
        }
    }

    /// Runs the convolution of `inputs` with `residual` added to its output and, when `relu`, a
    /// clamp at 0, all before the output leaves the GEMM where it can. Nil when this is not a
    /// float32 convolution or `residual` is not a float32 array of the output's shape: the
    /// caller then runs the steps this stands for.
    func run(_ inputs: [NDArray?], residual: NDArray?, relu: Bool, _ ctx: KernelContext) throws -> NDArray? {
        let x = try inputs.required(0), w = try inputs.required(1)
        let b = inputs.optional(2)
        guard x.dtype == .float, w.dtype == .float, (b?.dtype ?? .float) == .float, (residual?.dtype ?? .float) == .float,
            x.rank >= 3, w.rank == x.rank
        else { return nil }
        let output = try geometry(x: x.shape, w: w.shape, biasCount: b?.count).output
        if let residual, residual.shape != [x.shape[0], w.shape[0]] + output { return nil }
        return try conv(x, w, b, residual: residual, relu: relu, ctx)
    }

    /// The convolution as im2col + BLAS in `T` (float64 inputs compute in float64 this way).
    private func convGEMM<T: BLASElement>(_: T.Type, _ x: NDArray, _ w: NDArray, _ b: NDArray?, _ ctx: KernelContext) throws -> NDArray {
        let n = x.shape[0], c = x.shape[1], m = w.shape[0]
        let (g, output, padsEnd) = try geometry(x: x.shape, w: w.shape, biasCount: b?.count)
        let y = ctx.allocate(T.dtype, [n, m] + output)
        if y.count == 0 { return y }
        ConvKernel.im2colGEMM(x.pointer(as: T.self), w.pointer(as: T.self), b?.pointer(as: T.self), y.pointer(as: T.self),
                              n: n, c: c, m: m, group: group, g: g, pointwise: ConvKernel.isPointwise(g, padsEnd: padsEnd), ctx)
        return y
    }

    /// im2col + one GEMM per (image, group), then the bias: `py` [n, m, out] from `px` [n, c, in]
    /// and `pw` [m, c/group, kernel]. A pointwise window multiplies the input directly.
    static func im2colGEMM<T: BLASElement>(_ px: UnsafeMutablePointer<T>, _ pw: UnsafeMutablePointer<T>, _ pb: UnsafeMutablePointer<T>?,
                                           _ py: UnsafeMutablePointer<T>, n: Int, c: Int, m: Int, group: Int, g: Window3D,
                                           pointwise: Bool, _ ctx: KernelContext) {
        let cg = c / group, mg = m / group
        let inSize = g.inSize, outSize = g.outSize
        let rows = cg * g.kernelSize
        let col = pointwise ? nil : ctx.allocate(T.dtype, [rows, outSize])
        for i in 0..<n {
            for gi in 0..<group {
                let src = px + (i * c + gi * cg) * inSize
                let dst = py + (i * m + gi * mg) * outSize
                var bmat = UnsafePointer(src)
                if let col {
                    let pc = col.pointer(as: T.self)
                    ctx.parallelFor(rows, grain: max(1, 32768 / max(1, outSize))) { range in
                        ConvKernel.im2col(src, pc, g, rows: range)
                    }
                    bmat = UnsafePointer(pc)
                }
                T.gemm(transA: false, transB: false, m: mg, n: outSize, k: rows, alpha: 1,
                       a: pw + gi * mg * rows, lda: rows, b: bmat, ldb: outSize,
                       beta: 0, c: dst, ldc: outSize, threads: ctx.threads)
            }
            if let pb {
                let base = py + i * m * outSize
                ctx.parallelFor(m, grain: max(1, 65536 / max(1, outSize))) { range in
                    for oc in range {
                        let row = base + oc * outSize
                        let v = pb[oc]
                        for j in 0..<outSize { row[j] += v }
                    }
                }
            }
        }
    }

    /// Whether the AVX2/AVX-512 row-pointer GEMM of CKernels can run on this CPU.
    static let vectorGemm = VectorKernels.convGemmAvailable

    /// Convolution as a GEMM whose right-hand matrix is read by CKernels' packing, 48 columns at
    /// a time, without an im2col buffer where it can:
    ///
    /// - one or two spatial dimensions on AVX-512, with 64 output channels or more or a stride: a
    ///   window source. The packing gathers each panel from the input through the window
    ///   (padding, strides and dilations included), so there is no padded copy, no im2col matrix
    ///   and no discarded grid column.
    /// - otherwise, stride 1 over one or two spatial dimensions: row pointers into the
    ///   (zero-padded) input viewed with the padded row width `pw`; row (channel, kh, kw) of the
    ///   virtual im2col matrix starts at `channel * plane + kh * dh * pw + kw * dw`, and the
    ///   output is computed on a grid `oh x pw` (the last `pw - ow` columns of each row are
    ///   discarded). A 1x1 unpadded convolution reads the input itself.
    /// - otherwise: im2col, then the same GEMM on the columns.
    ///
    /// The bias is folded into the GEMM's initial accumulators.
    private func convRows(_ px: UnsafeMutablePointer<Float>, _ pw: UnsafeMutablePointer<Float>, _ pb: UnsafeMutablePointer<Float>?,
                          _ py: UnsafeMutablePointer<Float>, n: Int, c: Int, m: Int, g: Window3D, padsEnd: [Int],
                          prepacked: UnsafeMutablePointer<Float>?, residual: UnsafePointer<Float>? = nil, relu: Bool = false,
                          _ ctx: KernelContext) {
        let cg = c / group, mg = m / group
        let inSize = g.inSize, outSize = g.outSize, kSize = g.kernelSize
        let kRows = cg * kSize
        let packCount = VectorKernels.packedWeightsCount(m: mg, k: kRows)
        // The scratch arrays stay referenced until the end: their storage returns to the pool
        // when they are released.
        let packedArray = prepacked == nil ? ctx.allocate(.float, [group * packCount]) : nil
        let packed = prepacked ?? packedArray!.pointer(as: Float.self)
        if prepacked == nil {
            for gi in 0..<group {
                VectorKernels.packWeights(m: mg, k: kRows, pw + gi * mg * kRows, ldw: kRows, into: packed + gi * packCount)
            }
        }
        let r = padsEnd.count
        let padEndH = r >= 2 ? padsEnd[r - 2] : 0, padEndW = padsEnd[r - 1]
        let pointwise = ConvKernel.isPointwise(g, padsEnd: padsEnd)
        let planar = g.id == 1 && g.kd == 1 && g.od == 1
        let strided = g.sh != 1 || g.sw != 1
        // The window as CKernels reads it. Whether the GEMM reads it in place is CKernels' rule
        // (`ck_gemm_direct`); a strided window is then read from its input split into phases.
        var windowSource = VectorKernels.GemmSource()
        (windowSource.ih, windowSource.iw, windowSource.oh, windowSource.ow) = (Int32(g.ih), Int32(g.iw), Int32(g.oh), Int32(g.ow))
        (windowSource.kh, windowSource.kw, windowSource.sh, windowSource.sw) = (Int32(g.kh), Int32(g.kw), Int32(g.sh), Int32(g.sw))
        (windowSource.dh, windowSource.dw, windowSource.ph, windowSource.pw) = (Int32(g.dh), Int32(g.dw), Int32(g.ph), Int32(g.pw))
        windowSource.phased = strided ? 1 : 0
        let inPlace = VectorKernels.windowGemmAvailable && planar && !pointwise && VectorKernels.gemmDirect(m: mg, windowSource)
        if !inPlace { windowSource.phased = 0 }
        // Otherwise few output channels do not pay for packing a panel gathered through the
        // window: stride 1 then reads padded rows in place (a strided window would need im2col instead).
        let window = VectorKernels.windowGemmAvailable && planar && !pointwise
            && (inPlace || VectorKernels.gemmPacks(m: mg, window: false) || strided)
        let direct = !window && !strided && planar && g.pd == 0
        // The padded input plane (direct path): rows ph, row width pwid.
        let ph = g.ih + g.ph + padEndH, pwid = g.iw + g.pw + padEndW
        let padded = direct && (g.ph != 0 || g.pw != 0 || padEndH != 0 || padEndW != 0)
        let grid = direct && pwid != g.ow
        let nCols = direct ? (g.oh - 1) * pwid + g.ow : outSize
        let phaseCount = windowSource.phased == 1 ? VectorKernels.phaseSplitCount(windowSource) : 0
        let phaseArray = phaseCount > 0 ? ctx.allocate(.float, [cg * phaseCount]) : nil
        let padArray = padded ? ctx.allocate(.float, [cg * ph * pwid]) : nil
        let colArray = direct || window ? nil : ctx.allocate(.float, [kRows, outSize])
        let tmpArray = grid ? ctx.allocate(.float, [mg, g.oh * pwid]) : nil
        let pad = padArray?.pointer(as: Float.self)
        let col = colArray?.pointer(as: Float.self)
        let tmp = tmpArray?.pointer(as: Float.self)
        defer { withExtendedLifetime((packedArray, padArray, colArray, tmpArray, phaseArray)) {} }
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: window ? 0 : kRows) { rows in
            for i in 0..<n {
                for gi in 0..<group {
                    let src = px + (i * c + gi * cg) * inSize
                    let dst = py + (i * m + gi * mg) * outSize
                    var source = windowSource
                    if let phased = phaseArray?.pointer(as: Float.self) {
                        let template = windowSource
                        ctx.parallelFor(cg, grain: max(1, 16384 / max(1, phaseCount))) { range in
                            VectorKernels.phaseSplit(template, src, channels: range, into: phased)
                        }
                        source.x = UnsafePointer(phased)
                    } else if window {
                        source.x = UnsafePointer(src)
                    } else if direct {
                        var base = UnsafePointer(src), plane = inSize
                        if let pad {
                            ConvKernel.padInput(src, pad, channels: cg, g: g, ph: ph, pw: pwid, ctx)
                            base = UnsafePointer(pad)
                            plane = ph * pwid
                        }
                        for ch in 0..<cg {
                            for kh in 0..<g.kh {
                                for kw in 0..<g.kw {
                                    rows[(ch * g.kh + kh) * g.kw + kw] = base + ch * plane + kh * g.dh * pwid + kw * g.dw
                                }
                            }
                        }
                    } else if let col {
                        ctx.parallelFor(kRows, grain: max(1, 32768 / max(1, outSize))) { range in
                            ConvKernel.im2col(src, col, g, rows: range)
                        }
                        for k in 0..<kRows { rows[k] = UnsafePointer(col + k * outSize) }
                    }
                    if !window { source.rows = UnsafePointer(rows.baseAddress!) }
                    let out = tmp ?? dst
                    let ldy = grid ? g.oh * pwid : outSize
                    let w = UnsafePointer(packed + gi * packCount)
                    let bias = pb.map { UnsafePointer($0 + gi * mg) }
                    // The epilogue goes into the GEMM when it writes the output itself (not a grid).
                    let res = residual.map { $0 + (i * m + gi * mg) * outSize }
                    var epilogue = VectorKernels.GemmEpilogue(residual: tmp == nil ? res : nil, relu: tmp == nil && relu ? 1 : 0)
                    withUnsafePointer(to: &source) { source in
                        withUnsafePointer(to: &epilogue) { epilogue in
                            ConvKernel.parallelGemm(m: mg, k: kRows, packed: w, source: source, columns: nCols,
                                                    y: out, ldy: ldy, bias: bias, epilogue: epilogue, ctx)
                        }
                    }
                    if let tmp {
                        ctx.parallelFor(mg, grain: max(1, 16384 / max(1, outSize))) { range in
                            for oc in range {
                                for oh in 0..<g.oh {
                                    let at = oc * outSize + oh * g.ow
                                    (dst + at).update(from: tmp + oc * ldy + oh * pwid, count: g.ow)
                                    ConvKernel.addAndClamp(dst + at, residual: res.map { $0 + at }, relu: relu, count: g.ow)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// ``VectorKernels/gemm(m:k:packed:outputRows:source:columns:y:ldy:bias:epilogue:)`` over all
    /// `columns`, in tiles of output channels × column blocks spread over the context's threads.
    ///
    /// Columns alone are too few to share in late layers (a 7×7 map is two blocks), so when there
    /// are fewer blocks than threads (4 per thread where the kernel reads its rows in place), the
    /// output channels are cut too, in multiples of the packing's 8 rows: a packed panel is
    /// packed again by every row block that uses it, so packed kernels cut rows only when they
    /// must. A thread's share is at least about 260,000 multiply-adds (a microsecond or two): a
    /// smaller one costs more to hand to a worker than to compute.
    static func parallelGemm(m: Int, k: Int, packed: UnsafePointer<Float>, source: UnsafePointer<VectorKernels.GemmSource>,
                             columns: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?,
                             epilogue: UnsafePointer<VectorKernels.GemmEpilogue>? = nil, _ ctx: KernelContext) {
        let window = source.pointee.rows == nil
        let packs = VectorKernels.gemmPacks(m: m, window: window)
        let threads = ctx.threads
        var width = VectorKernels.gemmColumnBlock(m: m, window: window)
        // A packed kernel takes any column range (a partial block runs narrower tiles), so a map
        // of a few blocks is cut into equal shares of whole vectors instead: an 8 x 8 map is
        // 48 + 16 columns in blocks, 32 + 32 in shares.
        let vectors = (columns + 15) / 16
        if packs && threads > 1 && (columns + width - 1) / width < 4 * threads && vectors >= threads {
            width = (vectors + threads - 1) / threads * 16
        }
        let panels = (columns + width - 1) / width
        let rowBlocks = (m + 7) / 8
        let want = packs ? threads : threads * 4
        let split = threads > 1 && panels < want ? min(rowBlocks, (want + panels - 1) / panels) : 1
        let blockRows = ((rowBlocks + split - 1) / split) * 8
        let splits = (m + blockRows - 1) / blockRows
        let tileMACs = blockRows * k * width
        ctx.parallelFor(splits * panels, grain: max(1, (1 << 18) / max(1, tileMACs))) { range in
            // Consecutive tiles of one row block make one call (the kernel reuses each column block
            // across all of its rows).
            var t = range.lowerBound
            while t < range.upperBound {
                let block = t / panels
                let end = min(range.upperBound, (block + 1) * panels)
                let r0 = block * blockRows, r1 = min(m, r0 + blockRows)
                let p0 = t - block * panels, p1 = end - block * panels
                VectorKernels.gemm(m: m, k: k, packed: packed, outputRows: r0 ..< r1, source: source,
                                   columns: p0 * width ..< min(columns, p1 * width), y: y, ldy: ldy, bias: bias,
                                   epilogue: epilogue)
                t = end
            }
        }
    }

    /// Copies `channels` planes of `src` (ih x iw) into `dst` (ph x pw) with the begin pads of
    /// `g`, zeros elsewhere.
    static func padInput(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, channels: Int, g: Window3D,
                         ph: Int, pw: Int, _ ctx: KernelContext) {
        let inSize = g.inSize, plane = ph * pw
        ctx.parallelFor(channels, grain: max(1, 16384 / max(1, plane))) { range in
            for ch in range {
                let s = src + ch * inSize, d = dst + ch * plane
                d.update(repeating: 0, count: g.ph * pw)
                for y in 0..<g.ih {
                    let row = d + (g.ph + y) * pw
                    row.update(repeating: 0, count: g.pw)
                    (row + g.pw).update(from: s + y * g.iw, count: g.iw)
                    (row + g.pw + g.iw).update(repeating: 0, count: pw - g.pw - g.iw)
                }
                (d + (g.ph + g.ih) * pw).update(repeating: 0, count: (ph - g.ph - g.ih) * pw)
            }
        }
    }

    /// Unfolds the input patches of rows `rows` (row = channel * kernelSize + kernel offset) into
    /// `col` ([channels * kernelSize, outSize]), zero where a patch reaches into the padding.
    static func im2col<T: BLASElement>(_ src: UnsafeMutablePointer<T>, _ col: UnsafeMutablePointer<T>, _ g: Window3D, rows: Range<Int>) {
        let kSize = g.kernelSize, inSize = g.inSize, outSize = g.outSize
        for row in rows {
            let ch = row / kSize
            let kr = row % kSize
            let kd = kr / (g.kh * g.kw), kh = (kr / g.kw) % g.kh, kw = kr % g.kw
            let s = src + ch * inSize
            var q = col + row * outSize
            let off = kw * g.dw - g.pw
            let (lo, hi) = g.columnRange(offset: off)
            for od in 0..<g.od {
                let zi = od * g.sd - g.pd + kd * g.dd
                for oh in 0..<g.oh {
                    let yi = oh * g.sh - g.ph + kh * g.dh
                    if zi < 0 || zi >= g.id || yi < 0 || yi >= g.ih {
                        q.update(repeating: 0, count: g.ow)
                    } else {
                        let r = s + (zi * g.ih + yi) * g.iw + off
                        if lo > 0 { q.update(repeating: 0, count: lo) }
                        if g.sw == 1 {
                            (q + lo).update(from: r + lo, count: hi - lo)
                        } else {
                            let sw = g.sw
                            for x in lo..<hi { q[x] = r[x * sw] }
                        }
                        if hi < g.ow { (q + hi).update(repeating: 0, count: g.ow - hi) }
                    }
                    q += g.ow
                }
            }
        }
    }

    /// Direct convolution when every group has one input channel (depthwise convolution).
    private func depthwise(_ px: UnsafeMutablePointer<Float>, _ pw: UnsafeMutablePointer<Float>, _ pb: UnsafeMutablePointer<Float>?,
                           _ py: UnsafeMutablePointer<Float>, n: Int, c: Int, m: Int, g: Window3D, _ ctx: KernelContext) {
        let mult = m / c
        let inSize = g.inSize, outSize = g.outSize, kSize = g.kernelSize
        ctx.parallelFor(n * m, grain: max(1, 16384 / max(1, outSize * kSize))) { range in
            for nm in range {
                let i = nm / m, oc = nm % m
                let s = px + (i * c + oc / mult) * inSize
                let out = py + nm * outSize
                out.update(repeating: pb?[oc] ?? 0, count: outSize)
                let wk = pw + oc * kSize
                for kd in 0..<g.kd {
                    for kh in 0..<g.kh {
                        for kw in 0..<g.kw {
                            let wv = wk[(kd * g.kh + kh) * g.kw + kw]
                            let off = kw * g.dw - g.pw
                            let (lo, hi) = g.columnRange(offset: off)
                            if lo >= hi { continue }
                            for od in 0..<g.od {
                                let zi = od * g.sd - g.pd + kd * g.dd
                                if zi < 0 || zi >= g.id { continue }
                                for oh in 0..<g.oh {
                                    let yi = oh * g.sh - g.ph + kh * g.dh
                                    if yi < 0 || yi >= g.ih { continue }
                                    let r = s + (zi * g.ih + yi) * g.iw + off
                                    let q = out + (od * g.oh + oh) * g.ow
                                    if g.sw == 1 {
                                        for x in lo..<hi { q[x] += wv * r[x] }
                                    } else {
                                        let sw = g.sw
                                        for x in lo..<hi { q[x] += wv * r[x * sw] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: Gradients

/// VJP of Conv, per image and group (`col` = im2col of the input, [c/group · kernel, out]):
/// dW_g += dY_g · colᵀ, dX_g = col2im(W_gᵀ · dY_g), dB = dY summed over images and positions.
/// float32 and float64 compute in their own type; a pointwise window skips im2col/col2im.
func registerConvGradients(_ r: inout GradientRegistry) {
    r.register(["Conv"]) { c, gs in
        let x = try c.input(0), w = try c.input(1), y = try c.output(0)
        let gy = GradientMath.orZeros(gs[0], like: y, c.kernel)
        guard x.dtype == w.dtype, x.dtype == gy.dtype else { throw KernelError("Conv gradient: input \(x.dtype), weights \(w.dtype)") }
        let kernel = ConvKernel(window: try WindowAttributes(KernelBuildInfo(node: c.node, opset: c.opset)),
                                group: try c.attribute("group", default: 1))
        let (g, _, padsEnd) = try kernel.geometry(x: x.shape, w: w.shape, biasCount: c.inputs.optional(2)?.count)
        let pointwise = ConvKernel.isPointwise(g, padsEnd: padsEnd)
        let grads: (NDArray?, NDArray?, NDArray?)
        switch x.dtype {
        case .float:
            grads = ConvKernel.backward(Float.self, x: x, w: w, gy: gy, group: kernel.group, g: g, pointwise: pointwise,
                                        needs: (c.needs(0), c.needs(1), c.needs(2)), c.kernel)
        case .double:
            grads = ConvKernel.backward(Double.self, x: x, w: w, gy: gy, group: kernel.group, g: g, pointwise: pointwise,
                                        needs: (c.needs(0), c.needs(1), c.needs(2)), c.kernel)
        default:
            throw KernelError("Conv gradient on \(x.dtype) (float32 and float64 only)")
        }
        return [grads.0, grads.1, grads.2]
    }
}

extension ConvKernel {
    /// The cotangents of a convolution's input, weights and bias (those `needs` asks for), given
    /// the output's cotangent `gy` [n, m, out...] and the window `g` (input = `x`'s spatial dims).
    static func backward<T: BLASElement>(_: T.Type, x: NDArray, w: NDArray, gy: NDArray, group: Int, g: Window3D, pointwise: Bool,
                                         needs: (x: Bool, w: Bool, b: Bool), _ ctx: KernelContext) -> (NDArray?, NDArray?, NDArray?) {
        let n = x.shape[0], c = x.shape[1], m = w.shape[0]
        let cg = c / group, mg = m / group
        let inSize = g.inSize, outSize = g.outSize, kSize = g.kernelSize
        let rows = cg * kSize
        let px = x.pointer(as: T.self), pw = w.pointer(as: T.self), pg = gy.pointer(as: T.self)
        let dx = needs.x ? ctx.zeros(T.dtype, x.shape) : nil
        let dw = needs.w ? ctx.zeros(T.dtype, w.shape) : nil
        let db = needs.b ? biasGradient(T.self, gy, ctx) : nil
        if x.count == 0 || gy.count == 0 || w.count == 0 { return (dx, dw, db) }
        // Scratch: the input's columns (for dW) and the columns of dX (before col2im).
        let colArray = needs.w && !pointwise ? ctx.allocate(T.dtype, [rows, outSize]) : nil
        let dcolArray = needs.x && !pointwise ? ctx.allocate(T.dtype, [rows, outSize]) : nil
        let col = colArray?.pointer(as: T.self), dcol = dcolArray?.pointer(as: T.self)
        defer { withExtendedLifetime((colArray, dcolArray)) {} }
        for i in 0..<n {
            for gi in 0..<group {
                let src = px + (i * c + gi * cg) * inSize
                let gyg = UnsafePointer(pg + (i * m + gi * mg) * outSize)
                let wg = UnsafePointer(pw + gi * mg * rows)
                if let dw {
                    var cols = UnsafePointer(src)
                    if let col {
                        ctx.parallelFor(rows, grain: max(1, 32768 / max(1, outSize))) { range in
                            ConvKernel.im2col(src, col, g, rows: range)
                        }
                        cols = UnsafePointer(col)
                    }
                    // dW_g [mg, rows] += dY_g [mg, out] · colᵀ [out, rows]
                    T.gemm(transA: false, transB: true, m: mg, n: rows, k: outSize, alpha: 1, a: gyg, lda: outSize,
                           b: cols, ldb: outSize, beta: 1, c: dw.pointer(as: T.self) + gi * mg * rows, ldc: rows, threads: ctx.threads)
                }
                if let dx {
                    let dst = dx.pointer(as: T.self) + (i * c + gi * cg) * inSize
                    // dcol [rows, out] = W_gᵀ [rows, mg] · dY_g [mg, out]; pointwise: straight into dX.
                    T.gemm(transA: true, transB: false, m: rows, n: outSize, k: mg, alpha: 1, a: wg, lda: rows,
                           b: gyg, ldb: outSize, beta: 0, c: dcol ?? dst, ldc: outSize, threads: ctx.threads)
                    if let dcol {
                        ctx.parallelFor(cg, grain: max(1, 16384 / max(1, outSize * kSize))) { range in
                            for ch in range {
                                ConvTransposeKernel.col2im(dcol + ch * kSize * outSize, dst + ch * inSize, g, bias: 0)
                            }
                        }
                    }
                }
            }
        }
        return (dx, dw, db)
    }

    /// The cotangent of a per-channel bias: `gy` [n, m, ...] summed over all but axis 1.
    static func biasGradient<T: BLASElement>(_: T.Type, _ gy: NDArray, _ ctx: KernelContext) -> NDArray {
        let n = gy.shape[0], m = gy.shape[1], size = gy.shape.dropFirst(2).reduce(1, *)
        let db = ctx.zeros(T.dtype, [m])
        let s = gy.pointer(as: T.self), d = db.pointer(as: T.self)
        for i in 0..<n {
            for oc in 0..<m {
                let row = s + (i * m + oc) * size
                var acc: T = 0
                for j in 0..<size { acc += row[j] }
                d[oc] += acc
            }
        }
        return db
    }
}
