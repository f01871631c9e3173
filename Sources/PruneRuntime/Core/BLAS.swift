import Foundation
import CBLAS

/// The runtime's door to OpenBLAS: the only file that imports the `CBLAS` shim.
public enum BLAS {
    /// The kernel OpenBLAS picked for this CPU (`openblas_get_corename`), e.g. "Haswell".
    public static var coreName: String { String(cString: prunec_cblas_corename()) }

    /// OpenBLAS's build configuration string.
    public static var config: String { String(cString: prunec_cblas_config()) }

    /// Sets the number of threads OpenBLAS uses (process-wide).
    public static func setThreads(_ n: Int) {
        lock.lock()
        defer { lock.unlock() }
        configuredThreads = max(1, n)
        activeThreads = configuredThreads
        prunec_cblas_set_threads(Int32(configuredThreads))
    }

    private static var configuredThreads = 1
    private static var activeThreads = 1
    private static let lock = NSLock()

    /// Below this many multiply-adds a product runs on one thread: OpenBLAS would split even
    /// tiny products across threads (its threshold is a few thousand), and waking a second
    /// thread costs more than such a product (measured: small ResNet convs got slower with 2).
    static let multithreadMACs = 1 << 22

    /// Sets OpenBLAS's thread count for a product of `macs` multiply-adds (only when it changes).
    @inline(__always)
    static func threads(forMACs macs: Int) {
        guard configuredThreads > 1 else { return }
        let want = macs < multithreadMACs ? 1 : configuredThreads
        if want != activeThreads {
            lock.lock()
            activeThreads = want
            prunec_cblas_set_threads(Int32(want))
            lock.unlock()
        }
    }

    /// Row-major single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`,
    /// with `op(A)` of shape m×k and `op(B)` of shape k×n.
    @inline(__always)
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // BLAS leaves C untouched when k == 0 only if beta == 1; scale explicitly.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        threads(forMACs: m * n * k)
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Double-precision GEMM, same conventions as ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
    @inline(__always)
    public static func dgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        threads(forMACs: m * n * k)
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Solves `A X = B` for a symmetric positive definite `n`×`n` matrix `a` (row or column major:
    /// it is symmetric) and `nrhs` right-hand sides stored one after another in `b` (each of `n`
    /// elements). `b` becomes the solution; `a` is overwritten by its Cholesky factor.
    ///
    /// - Returns: `false` when `a` is not positive definite (add damping and retry).
    public static func solvePositiveDefinite(_ a: inout [Double], n: Int, _ b: inout [Double], nrhs: Int) -> Bool {
        precondition(a.count == n * n && b.count == n * nrhs)
        guard n > 0, nrhs > 0 else { return true }
        threads(forMACs: n * n * (n + nrhs))
        return a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                prunec_lapack_dposv(Int32(n), Int32(nrhs), ap.baseAddress!, Int32(n), bp.baseAddress!, Int32(n)) == 0
            }
        }
    }

    /// Row-major single-precision matrix-vector product: `y = alpha * op(A) * x + beta * y`,
    /// with `A` of shape m×n (`op(A)` is n×m when `trans`).
    @inline(__always)
    public static func sgemv(
        trans: Bool, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, incx: Int = 1, beta: Float = 0, y: UnsafeMutablePointer<Float>, incy: Int = 1
    ) {
        guard m > 0, n > 0 else {
            let len = trans ? n : m
            for i in 0..<len { y[i * incy] = beta == 0 ? 0 : beta * y[i * incy] }
            return
        }
        threads(forMACs: m * n)
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, Int32(incx), beta, y, Int32(incy))
    }

    /// Double-precision matrix-vector product, same conventions as ``sgemv(trans:m:n:alpha:a:lda:x:incx:beta:y:incy:)``.
    @inline(__always)
    public static func dgemv(
        trans: Bool, m: Int, n: Int, alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, incx: Int = 1, beta: Double = 0, y: UnsafeMutablePointer<Double>, incy: Int = 1
    ) {
        guard m > 0, n > 0 else {
            let len = trans ? n : m
            for i in 0..<len { y[i * incy] = beta == 0 ? 0 : beta * y[i * incy] }
            return
        }
        threads(forMACs: m * n)
        cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, Int32(incx), beta, y, Int32(incy))
    }
}
