import PruneIR

// Gemm: Y = alpha * op(A) * op(B) + beta * C, with C broadcast to [M, N] (optional from opset 11).
// float32/float64 use BLAS (C is written into Y first and BLAS adds the product with beta);
// integer types use a plain loop; float16/bfloat16 are computed in float32 (constant operands,
// weights and bias, widened once per plan) and rounded once.
func registerGemmKernels(_ r: inout KernelRegistry) {
    for since in [1, 6, 7, 9, 11, 13] {
        r.register("Gemm", since: since) { info in
            if let t = info.inputType(0), !GemmKernel.supports(t) {
                throw KernelError.unsupported("Gemm on \(t)")
            }
            return GemmKernel(
                transA: try info.attribute("transA", default: 0) != 0,
                transB: try info.attribute("transB", default: 0) != 0,
                alpha: try info.attribute("alpha", default: Float(1)),
                beta: try info.attribute("beta", default: Float(1)),
                constantInputs: (0..<3).map { info.constantInput($0) != nil })
        }
    }
}

/// General matrix multiplication with bias.
final class GemmKernel: Kernel {
    let transA: Bool, transB: Bool
    let alpha: Float, beta: Float

    /// float32 copies of constant float16/bfloat16 operands (nil for operands that are not constant).
    private let widened: [WidenedConstant?]

    init(transA: Bool, transB: Bool, alpha: Float, beta: Float, constantInputs: [Bool] = []) {
        widened = (0..<3).map { $0 < constantInputs.count && constantInputs[$0] ? WidenedConstant() : nil }
        self.transA = transA
        self.transB = transB
        self.alpha = alpha
        self.beta = beta
    }

    static func supports(_ t: DType) -> Bool {
        switch t {
        case .float, .double, .float16, .bfloat16, .int32, .int64, .uint32, .uint64: return true
        default: return false
        }
    }

    func run(_ inputs: [NDArray?], _ ctx: KernelContext) throws -> [NDArray?] {
        let a = try inputs.required(0), b = try inputs.required(1)
        let c = inputs.optional(2)
        guard a.rank == 2, b.rank == 2 else { throw KernelError("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)") }
        guard a.dtype == b.dtype, c == nil || c!.dtype == a.dtype else { throw KernelError("Gemm operand types differ") }
        let m = transA ? a.shape[1] : a.shape[0]
        let k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? b.shape[1] : b.shape[0]
        let n = transB ? b.shape[0] : b.shape[1]
        guard k == kb else { throw KernelError("Gemm inner dimensions differ: A \(a.shape) B \(b.shape) transA \(transA) transB \(transB)") }
        if let c, try Broadcast.shape(c.shape, [m, n]) != [m, n] {
            throw KernelError("Gemm C \(c.shape) does not broadcast to [\(m), \(n)]")
        }
        switch a.dtype {
        case .float: return [blas(Float.self, a, b, c, m, n, k, ctx)]
        case .double: return [blas(Double.self, a, b, c, m, n, k, ctx)]
        case .float16, .bfloat16:
            func wide(_ x: NDArray, _ i: Int) -> NDArray { widened[i]?.float(x, ctx) ?? FloatBridge.toFloat(x, ctx) }
            let y = blas(Float.self, wide(a, 0), wide(b, 1), c.map { wide($0, 2) }, m, n, k, ctx)
            return [FloatBridge.fromFloat(y, to: a.dtype, ctx)]
        case .int32: return [integer(Int32.self, a, b, c, m, n, k, ctx)]
        case .int64: return [integer(Int64.self, a, b, c, m, n, k, ctx)]
        case .uint32: return [integer(UInt32.self, a, b, c, m, n, k, ctx)]
        case .uint64: return [integer(UInt64.self, a, b, c, m, n, k, ctx)]
        default: throw KernelError("Gemm does not support \(a.dtype)")
        }
    }

    /// Writes C broadcast to [m, n] into `y`.
    private static func fillBias<T>(_: T.Type, _ c: NDArray, _ y: UnsafeMutablePointer<T>, _ m: Int, _ n: Int) {
        let pc = c.pointer(as: T.self)
        let cs = c.shape
        let rows = cs.count == 2 ? cs[0] : 1
        let cols = cs.last ?? 1
        for i in 0..<m {
            let src = pc + (rows == 1 ? 0 : i * cols)
            let dst = y + i * n
            if cols == 1 {
                let v = src[0]
                for j in 0..<n { dst[j] = v }
            } else {
                dst.update(from: src, count: n)
            }
        }
    }

    private func blas<T: BLASElement>(_: T.Type, _ a: NDArray, _ b: NDArray, _ c: NDArray?, _ m: Int, _ n: Int, _ k: Int, _ ctx: KernelContext) -> NDArray {
        let y = ctx.allocate(T.dtype, [m, n])
        let py = y.pointer(as: T.self)
        var beta: T = 0
        if let c, self.beta != 0, m * n > 0 {
            GemmKernel.fillBias(T.self, c, py, m, n)
            beta = T(self.beta)
        }
        if m * n > 0 {
            T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: T(alpha),
                   a: a.pointer(as: T.self), lda: a.shape[1], b: b.pointer(as: T.self), ldb: b.shape[1],
                   beta: beta, c: py, ldc: n, threads: ctx.threads)
        }
        return y
    }

    private func integer<T: FixedWidthInteger & TensorElement>(_: T.Type, _ a: NDArray, _ b: NDArray, _ c: NDArray?, _ m: Int, _ n: Int, _ k: Int, _ ctx: KernelContext) -> NDArray {
        let y = ctx.allocate(T.dtype, [m, n])
        let py = y.pointer(as: T.self)
        integerGemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a.pointer(as: T.self), lda: a.shape[1],
                    b: b.pointer(as: T.self), ldb: b.shape[1], c: py, ldc: n)
        // Integer Gemm: alpha and beta are applied in floating point and truncated, as ONNX Runtime does.
        let ia = Double(alpha), ib = Double(beta)
        if ia != 1 { for i in 0..<(m * n) { py[i] = T(truncatingIfNeeded: Int64(Double(py[i]) * ia)) } }
        if let c, ib != 0, m * n > 0 {
            let bias = UnsafeMutablePointer<T>.allocate(capacity: m * n)
            defer { bias.deallocate() }
            GemmKernel.fillBias(T.self, c, bias, m, n)
            for i in 0..<(m * n) { py[i] &+= ib == 1 ? bias[i] : T(truncatingIfNeeded: Int64(Double(bias[i]) * ib)) }
        }
        return y
    }
}

// MARK: Gradients

/// VJP of Gemm (`Y = alpha · op(A) · op(B) + beta · C`): d op(A) = alpha · dY · op(B)ᵀ and
/// d op(B) = alpha · op(A)ᵀ · dY, each one BLAS call with the transposes folded into its flags;
/// dC = beta · dY summed down to C's broadcast shape.
func registerGemmGradients(_ r: inout GradientRegistry) {
    r.register(["Gemm"]) { c, gs in
        let a = try c.input(0), b = try c.input(1), y = try c.output(0)
        let g = GradientMath.orZeros(gs[0], like: y, c.kernel)
        let transA = try c.attribute("transA", default: 0) != 0, transB = try c.attribute("transB", default: 0) != 0
        let alpha = Double(try c.attribute("alpha", default: Float(1))), beta = Double(try c.attribute("beta", default: Float(1)))
        switch a.dtype {
        case .float:
            return GemmKernel.backward(Float.self, a, b, c.inputs.optional(2), g, transA, transB, Float(alpha), Float(beta), c)
        case .double:
            return GemmKernel.backward(Double.self, a, b, c.inputs.optional(2), g, transA, transB, alpha, beta, c)
        default:
            throw KernelError("Gemm gradient on \(a.dtype) (float32 and float64 only)")
        }
    }
}

extension GemmKernel {
    fileprivate static func backward<T: BLASElement>(_: T.Type, _ a: NDArray, _ b: NDArray, _ bias: NDArray?, _ g: NDArray,
                                                     _ transA: Bool, _ transB: Bool, _ alpha: T, _ beta: T,
                                                     _ c: GradientContext) -> [NDArray?] {
        let m = g.shape[0], n = g.shape[1]
        let k = transA ? a.shape[0] : a.shape[1]
        let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self)), pg = UnsafePointer(g.pointer(as: T.self))
        let lda = a.shape[1], ldb = b.shape[1]
        var da: NDArray?, db: NDArray?, dc: NDArray?
        if c.needs(0) {
            let out = c.kernel.allocate(T.dtype, a.shape)
            if transA {
                // dA [k, m] = alpha · op(B) [k, n] · dYᵀ [n, m]
                T.gemm(transA: transB, transB: true, m: k, n: m, k: n, alpha: alpha, a: pb, lda: ldb,
                       b: pg, ldb: n, beta: 0, c: out.pointer(as: T.self), ldc: m, threads: c.kernel.threads)
            } else {
                // dA [m, k] = alpha · dY [m, n] · op(B)ᵀ [n, k]
                T.gemm(transA: false, transB: !transB, m: m, n: k, k: n, alpha: alpha, a: pg, lda: n,
                       b: pb, ldb: ldb, beta: 0, c: out.pointer(as: T.self), ldc: k, threads: c.kernel.threads)
            }
            da = out
        }
        if c.needs(1) {
            let out = c.kernel.allocate(T.dtype, b.shape)
            if transB {
                // dB [n, k] = alpha · dYᵀ [n, m] · op(A) [m, k]
                T.gemm(transA: true, transB: transA, m: n, n: k, k: m, alpha: alpha, a: pg, lda: n,
                       b: pa, ldb: lda, beta: 0, c: out.pointer(as: T.self), ldc: k, threads: c.kernel.threads)
            } else {
                // dB [k, n] = alpha · op(A)ᵀ [k, m] · dY [m, n]
                T.gemm(transA: !transA, transB: false, m: k, n: n, k: m, alpha: alpha, a: pa, lda: lda,
                       b: pg, ldb: n, beta: 0, c: out.pointer(as: T.self), ldc: n, threads: c.kernel.threads)
            }
            db = out
        }
        if c.needs(2), let bias = bias {
            let scaled = c.kernel.allocate(T.dtype, g.shape)
            let s = scaled.pointer(as: T.self)
            for i in 0..<g.count { s[i] = beta * pg[i] }
            dc = GradientMath.reduce(scaled, to: bias.shape, c.kernel)
        }
        return [da, db, dc]
    }
}
