import PruneIR

// MatMul: numpy.matmul semantics (1-D operands, batch dimensions that broadcast).
// float32/float64 go to BLAS; the integer types use a plain loop; float16/bfloat16 are computed
// in float32 by BLAS and rounded once (a constant operand, a weight, is widened once per plan).
func registerMatMulKernels(_ r: inout KernelRegistry) {
    for since in [1, 9, 13] {
        r.register("MatMul", since: since) { info in
            if let t = info.inputType(0), !MatMulKernel.supports(t) {
                throw KernelError.unsupported("MatMul on \(t)")
            }
            return MatMulKernel(constantInputs: [info.constantInput(0) != nil, info.constantInput(1) != nil])
        }
    }
}

/// numpy-style matrix product of two arrays.
final class MatMulKernel: Kernel {
    static func supports(_ t: DType) -> Bool {
        switch t {
        case .float, .double, .float16, .bfloat16, .int32, .int64, .uint32, .uint64: return true
        default: return false
        }
    }

    /// float32 copies of constant float16/bfloat16 operands (nil for operands that are not constant).
    private let widened: [WidenedConstant?]

    init(constantInputs: [Bool] = []) {
        widened = (0..<2).map { $0 < constantInputs.count && constantInputs[$0] ? WidenedConstant() : nil }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let a = try inputs.required(0), b = try inputs.required(1)
        if FloatBridge.isHalf(a.dtype), a.dtype == b.dtype {
            let p = try MatMulKernel.plan(a.shape, b.shape)
            let fa = widened[0]?.float(a, ctx) ?? FloatBridge.toFloat(a, ctx)
            if let fb = widened[1]?.kept(b) {
                return [FloatBridge.fromFloat(MatMulKernel.blas(Float.self, fa, fb, p, ctx), to: a.dtype, ctx)]
            }
            if b.rank == 2, p.foldIntoM, b.count > MatMulKernel.panelElements {
                return [FloatBridge.fromFloat(MatMulKernel.panelled(fa, b, p, ctx), to: a.dtype, ctx)]
            }
            let fb = FloatBridge.toFloat(b, ctx)
            return [FloatBridge.fromFloat(MatMulKernel.blas(Float.self, fa, fb, p, ctx), to: a.dtype, ctx)]
        }
        return [try MatMulKernel.matmul(a, b, ctx)]
    }

    /// The shapes of a matrix product: batch shape, M, K, N, output shape, and each operand's
    /// batch offsets (in matrices) for every output batch index (may be empty when `foldIntoM`: they are not read then).
    struct Plan {
        var m: Int, k: Int, n: Int
        var outShape: [Int]
        var batch: Int
        var aOffsets: [Int]
        var bOffsets: [Int]
        /// `a` has the full batch and `b` a single matrix: the batch folds into M.
        var foldIntoM: Bool
    }

    static func plan(_ aShape: [Int], _ bShape: [Int]) throws -> Plan {
        guard !aShape.isEmpty, !bShape.isEmpty else { throw KernelError("MatMul operands must have rank >= 1, got \(aShape) and \(bShape)") }
        let aS = aShape.count == 1 ? [1, aShape[0]] : aShape
        let bS = bShape.count == 1 ? [bShape[0], 1] : bShape
        let m = aS[aS.count - 2], k = aS[aS.count - 1]
        let k2 = bS[bS.count - 2], n = bS[bS.count - 1]
        guard k == k2 else { throw KernelError("MatMul inner dimensions differ: \(aShape) × \(bShape)") }
        // The two shapes every transformer runs per layer, planned without the general
        // broadcast below (which costs more than the product at decoder sizes).
        if aShape.count >= 2, bShape.count == 2 {
            // Activations times a weight matrix: the batch folds into M.
            var outShape = aShape
            outShape[outShape.count - 1] = n
            let batch = aShape.count == 2 ? 1 : aShape[..<(aShape.count - 2)].reduce(1, *)
            return Plan(m: m, k: k, n: n, outShape: outShape, batch: batch, aOffsets: [], bOffsets: [],
                        foldIntoM: true)
        }
        if aShape.count == bShape.count, aShape.count > 2, aShape[..<(aShape.count - 2)] == bShape[..<(bShape.count - 2)] {
            // Equal batch shapes (attention's per-head products): matrix i with matrix i.
            var outShape = aShape
            outShape[outShape.count - 1] = n
            let batch = aShape[..<(aShape.count - 2)].reduce(1, *)
            let identity = Array(0..<batch)
            return Plan(m: m, k: k, n: n, outShape: outShape, batch: batch, aOffsets: identity, bOffsets: identity,
                        foldIntoM: batch == 1)
        }
        let aBatch = Array(aS.dropLast(2)), bBatch = Array(bS.dropLast(2))
        let batchShape = try Broadcast.shape(aBatch, bBatch)
        var outShape = batchShape + [m, n]
        if bShape.count == 1 { outShape.removeLast() }
        if aShape.count == 1 { outShape.remove(at: outShape.count - (bShape.count == 1 ? 1 : 2)) }
        let batch = batchShape.reduce(1, *)
        let aCount = aBatch.reduce(1, *), bCount = bBatch.reduce(1, *)
        let aOff = Broadcast.offsets(shape: batchShape, strides: Broadcast.strides(of: aBatch, to: batchShape))
        let bOff = Broadcast.offsets(shape: batchShape, strides: Broadcast.strides(of: bBatch, to: batchShape))
        return Plan(m: m, k: k, n: n, outShape: outShape, batch: batch, aOffsets: aOff, bOffsets: bOff,
                    foldIntoM: bCount == 1 && aCount == batch)
    }

    /// Elements of a 16-bit weight above which, when no float32 copy is kept, it is widened in
    /// column panels of about this size instead of whole (the 128k-token output layer of a 1B
    /// decoder would otherwise take 1 GB of arena for one call).
    static let panelElements = 1 << 22

    /// `a` (float32, its batch folded into M) times the float16/bfloat16 matrix `b` [K, N], `b`
    /// widened one panel of columns at a time into a reused buffer.
    static func panelled(_ a: NDArray, _ b: NDArray, _ p: Plan, _ ctx: KernelContext) -> NDArray {
        let (rows, k, n) = (p.batch * p.m, p.k, p.n)
        let width = min(n, max(64, panelElements / max(k, 1)))
        let out = ctx.allocate(.float, p.outShape)
        let panel = ctx.allocate(.float, [k, width])
        let src = UnsafePointer(b.pointer(as: UInt16.self)), bf = b.dtype == .bfloat16
        let dst = panel.pointer(as: Float.self), pa = a.pointer(as: Float.self), pc = out.pointer(as: Float.self)
        var n0 = 0
        while n0 < n {
            let w = min(width, n - n0)
            ctx.parallelFor(k, grain: max(1, FloatBridge.grain / w)) { r in
                for row in r { VectorKernels.widen(src + row * n + n0, bfloat16: bf, dst + row * w, count: w) }
            }
            Float.gemm(transA: false, transB: false, m: rows, n: w, k: k, alpha: 1, a: pa, lda: k,
                       b: dst, ldb: w, beta: 0, c: pc + n0, ldc: n, threads: ctx.threads)
            n0 += w
        }
        return out
    }

    /// `a @ b` as numpy.matmul computes it.
    static func matmul(_ a: NDArray, _ b: NDArray, _ ctx: KernelContext) throws -> NDArray {
        guard a.dtype == b.dtype else { throw KernelError("MatMul operands have types \(a.dtype) and \(b.dtype)") }
        let p = try plan(a.shape, b.shape)
        switch a.dtype {
        case .float: return blas(Float.self, a, b, p, ctx)
        case .double: return blas(Double.self, a, b, p, ctx)
        case .float16, .bfloat16:
            let r = blas(Float.self, FloatBridge.toFloat(a, ctx), FloatBridge.toFloat(b, ctx), p, ctx)
            return FloatBridge.fromFloat(r, to: a.dtype, ctx)
        case .int32: return integer(Int32.self, a, b, p, ctx)
        case .int64: return integer(Int64.self, a, b, p, ctx)
        case .uint32: return integer(UInt32.self, a, b, p, ctx)
        case .uint64: return integer(UInt64.self, a, b, p, ctx)
        default: throw KernelError("MatMul does not support \(a.dtype)")
        }
    }

    static func blas<T: BLASElement>(_: T.Type, _ a: NDArray, _ b: NDArray, _ p: Plan, _ ctx: KernelContext) -> NDArray {
        let out = ctx.allocate(T.dtype, p.outShape)
        let pa = a.pointer(as: T.self), pb = b.pointer(as: T.self), pc = out.pointer(as: T.self)
        let (m, n, k) = (p.m, p.n, p.k)
        if p.foldIntoM {
            // One large GEMM: the batch of A stacks into its rows.
            T.gemm(transA: false, transB: false, m: p.batch * m, n: n, k: k, alpha: 1, a: pa, lda: k,
                   b: pb, ldb: n, beta: 0, c: pc, ldc: n, threads: ctx.threads)
            return out
        }
        // Attention's per-head products are small (each under BLAS's threading threshold): the heads
        // are shared among the threads instead, each product on one.
        let offsets = (a: p.aOffsets, b: p.bOffsets)
        batched(p.batch, m: m, n: n, k: k, ctx) { i, threads in
            T.gemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: pa + offsets.a[i] * m * k, lda: k,
                   b: pb + offsets.b[i] * k * n, ldb: n, beta: 0, c: pc + i * m * n, ldc: n, threads: threads)
        }
        return out
    }

    private static func integer<T: FixedWidthInteger & TensorElement>(_: T.Type, _ a: NDArray, _ b: NDArray, _ p: Plan, _ ctx: KernelContext) -> NDArray {
        let out = ctx.allocate(T.dtype, p.outShape)
        let pa = a.pointer(as: T.self), pb = b.pointer(as: T.self), pc = out.pointer(as: T.self)
        let (m, n, k) = (p.m, p.n, p.k)
        if p.foldIntoM {
            integerGemm(transA: false, transB: false, m: p.batch * m, n: n, k: k, a: pa, lda: k, b: pb, ldb: n, c: pc, ldc: n)
            return out
        }
        for i in 0..<p.batch {
            integerGemm(transA: false, transB: false, m: m, n: n, k: k, a: pa + p.aOffsets[i] * m * k, lda: k,
                        b: pb + p.bOffsets[i] * k * n, ldb: n, c: pc + i * m * n, ldc: n)
        }
        return out
    }
}

// MARK: Gradients

/// VJP of MatMul: dA = g·Bᵀ, dB = Aᵀ·g over the broadcast batch, summed down to each operand's
/// batch shape; 1-D operands are read as a row (A) or a column (B) like the forward pass.
func registerMatMulGradients(_ r: inout GradientRegistry) {
    r.register(["MatMul"]) { c, gs in
        let a0 = try c.input(0), b0 = try c.input(1), y = try c.output(0)
        let g0 = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let a = a0.rank == 1 ? a0.reshaped([1, a0.shape[0]]) : a0
        let b = b0.rank == 1 ? b0.reshaped([b0.shape[0], 1]) : b0
        // The output with both matrix axes present (a 1-D operand removed one).
        var gShape = Array(y.shape)
        if a0.rank == 1 { gShape.insert(1, at: gShape.count - (b0.rank == 1 ? 0 : 1)) }
        if b0.rank == 1 { gShape.append(1) }
        let g = g0.reshaped(gShape)
        var ga: NDArray?, gb: NDArray?
        if c.needs(0) {
            if let direct = MatMulKernel.gradientProduct(g, b, into: a.shape, transposeFirst: false, c.kernel) {
                ga = direct.reshaped(a0.shape)
            } else {
                let full = try MatMulKernel.matmul(g, MatMulKernel.transposeLastTwo(b, c.kernel), c.kernel)
                ga = GradientMath.reduce(full, to: a.shape, c.kernel).reshaped(a0.shape)
            }
        }
        if c.needs(1) {
            if let direct = MatMulKernel.gradientProduct(a, g, into: b.shape, transposeFirst: true, c.kernel) {
                gb = direct.reshaped(b0.shape)
            } else {
                let full = try MatMulKernel.matmul(MatMulKernel.transposeLastTwo(a, c.kernel), g, c.kernel)
                gb = GradientMath.reduce(full, to: b.shape, c.kernel).reshaped(b0.shape)
            }
        }
        return [ga, gb]
    }
}

extension MatMulKernel {
    /// The two products of MatMul's VJP without a transposed copy (BLAS reads the operand
    /// transposed), for the shapes transformers differentiate through, or `nil` for the general path:
    /// - `transposeFirst == false`: `dA = g·Bᵀ` (`x` = g, `y` = B), with B one matrix (the batch of
    ///   g folds into its rows) or g and B of one batch shape (matrix i with matrix i);
    /// - `transposeFirst == true`: `dB = Aᵀ·g` (`x` = A, `y` = g), summed over the batch when B is
    ///   one matrix (`shape` of rank 2: the batch folds into the shared dimension), or per matrix
    ///   when A and g have B's batch shape.
    static func gradientProduct(_ x: NDArray, _ y: NDArray, into shape: [Int], transposeFirst: Bool, _ ctx: KernelContext) -> NDArray? {
        guard x.dtype == y.dtype, x.rank >= 2, y.rank >= 2, shape.count >= 2 else { return nil }
        switch x.dtype {
        case .float: return gradientProduct(Float.self, x, y, into: shape, transposeFirst: transposeFirst, ctx)
        case .double: return gradientProduct(Double.self, x, y, into: shape, transposeFirst: transposeFirst, ctx)
        default: return nil
        }
    }

    private static func gradientProduct<T: BLASElement>(_: T.Type, _ x: NDArray, _ y: NDArray, into shape: [Int], transposeFirst: Bool,
                                                        _ ctx: KernelContext) -> NDArray? {
        let xr = x.shape[x.rank - 2], xc = x.shape[x.rank - 1], yr = y.shape[y.rank - 2], yc = y.shape[y.rank - 1]
        let xBatch = Array(x.shape.dropLast(2)), yBatch = Array(y.shape.dropLast(2)), outBatch = Array(shape.dropLast(2))
        let px = x.pointer(as: T.self), py = y.pointer(as: T.self)
        if !transposeFirst {
            // dA[.., m, k] = g[.., m, n] · B[.., k, n]ᵀ.
            guard xc == yc, shape[shape.count - 2] == xr, shape[shape.count - 1] == yr, outBatch == xBatch else { return nil }
            let out = ctx.allocate(T.dtype, shape)
            let pc = out.pointer(as: T.self)
            if y.rank == 2 {
                let rows = x.count / max(1, xc)
                T.gemm(transA: false, transB: true, m: rows, n: yr, k: xc, alpha: 1, a: px, lda: xc, b: py, ldb: yc, beta: 0,
                       c: pc, ldc: yr, threads: ctx.threads)
                return out
            }
            guard yBatch == xBatch else { return nil }
            batched(xBatch.reduce(1, *), m: xr, n: yr, k: xc, ctx) { i, threads in
                T.gemm(transA: false, transB: true, m: xr, n: yr, k: xc, alpha: 1, a: px + i * xr * xc, lda: xc, b: py + i * yr * yc,
                       ldb: yc, beta: 0, c: pc + i * xr * yr, ldc: yr, threads: threads)
            }
            return out
        }
        // dB[.., k, n] = A[.., m, k]ᵀ · g[.., m, n].
        guard xr == yr, shape[shape.count - 2] == xc, shape[shape.count - 1] == yc, xBatch == yBatch else { return nil }
        let out = ctx.allocate(T.dtype, shape)
        let pc = out.pointer(as: T.self)
        if shape.count == 2 {
            let rows = x.count / max(1, xc)
            T.gemm(transA: true, transB: false, m: xc, n: yc, k: rows, alpha: 1, a: px, lda: xc, b: py, ldb: yc, beta: 0,
                   c: pc, ldc: yc, threads: ctx.threads)
            return out
        }
        guard outBatch == xBatch else { return nil }
        batched(xBatch.reduce(1, *), m: xc, n: yc, k: xr, ctx) { i, threads in
            T.gemm(transA: true, transB: false, m: xc, n: yc, k: xr, alpha: 1, a: px + i * xr * xc, lda: xc, b: py + i * yr * yc,
                   ldb: yc, beta: 0, c: pc + i * xc * yc, ldc: yc, threads: threads)
        }
        return out
    }

    /// `body(i, threads)` for each of `count` products: when each is under BLAS's threading
    /// threshold, the products are shared among the threads, each on one; else each uses them all.
    private static func batched(_ count: Int, m: Int, n: Int, k: Int, _ ctx: KernelContext, _ body: (Int, Int) -> Void) {
        let perThread = ctx.threads > 1 && m * n * k < BLAS.multithreadMACs
        ctx.parallelFor(count, grain: perThread ? max(1, (1 << 18) / max(1, m * n * k)) : count) { range in
            for i in range { body(i, perThread ? 1 : ctx.threads) }
        }
    }

    /// A copy of `x` with its last two axes swapped.
    static func transposeLastTwo(_ x: NDArray, _ ctx: KernelContext) -> NDArray {
        let r = x.rank, m = x.shape[r - 2], n = x.shape[r - 1]
        var shape = x.shape
        shape.swapAt(r - 2, r - 1)
        let out = ctx.allocate(x.dtype, shape)
        let batch = x.count / max(1, m * n)
        let size = x.dtype == .double ? 8 : 4
        precondition(x.dtype == .float || x.dtype == .double, "gradients are float32/float64")
        let src = x.rawPointer, dst = out.rawPointer
        for bi in 0..<batch {
            let base = bi * m * n * size
            for i in 0..<m {
                for j in 0..<n {
                    (dst + base + (j * m + i) * size).copyMemory(from: src + base + (i * n + j) * size, byteCount: size)
                }
            }
        }
        return out
    }
}
