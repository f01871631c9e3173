import PruneIR

// Gemm: Y = alpha * op(A) * op(B) + beta * C, with C broadcast to [M, N] (optional from opset 11).
// float32/float64 use BLAS (C is written into Y first and BLAS adds the product with beta);
// integer types use a plain loop; float16/bfloat16 are computed in float32.
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
                beta: try info.attribute("beta", default: Float(1)))
        }
    }
}

/// General matrix multiplication with bias.
final class GemmKernel: Kernel {
    let transA: Bool, transB: Bool
    let alpha: Float, beta: Float

    init(transA: Bool, transB: Bool, alpha: Float, beta: Float) {
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
        if let c, try Broadcast.shape([c.shape, [m, n]]) != [m, n] {
            throw KernelError("Gemm C \(c.shape) does not broadcast to [\(m), \(n)]")
        }
        switch a.dtype {
        case .float: return [blas(Float.self, a, b, c, m, n, k, ctx)]
        case .double: return [blas(Double.self, a, b, c, m, n, k, ctx)]
        case .float16, .bfloat16:
            let y = blas(Float.self, FloatBridge.toFloat(a, ctx), FloatBridge.toFloat(b, ctx),
                         c.map { FloatBridge.toFloat($0, ctx) }, m, n, k, ctx)
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
                   beta: beta, c: py, ldc: n)
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
