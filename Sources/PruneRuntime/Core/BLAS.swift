import Foundation
import CBLAS

/// The runtime's door to OpenBLAS: the only file that imports the `CBLAS` shim.
///
/// Every product takes the threads it may use (`threads:`, default 1): an ``Interpreter`` passes
/// its ``Interpreter/Options/threads``, so two interpreters with different settings can run in
/// one process. Products under ``multithreadMACs`` multiply-adds run on one thread whatever the
/// caller allows. A count can change the last bits of a product (OpenBLAS splits the work
/// differently), but results for one count are reproducible, and one thread is the default.
public enum BLAS {
    /// The kernel OpenBLAS picked for this CPU (`openblas_get_corename`), e.g. "Haswell".
    public static var coreName: String { String(cString: prunec_cblas_corename()) }

    /// OpenBLAS's build configuration string.
    public static var config: String { String(cString: prunec_cblas_config()) }

    /// Below this many multiply-adds a product runs on one thread: OpenBLAS would split even
    /// tiny products across threads (its threshold is a few thousand), and waking a second
    /// thread costs more than such a product (measured: small ResNet convs got slower with 2).
    public static let multithreadMACs = 1 << 22

    /// The threads one call of `macs` multiply-adds runs on when its caller allows `threads`.
    static func threads(_ threads: Int, forMACs macs: Int) -> Int {
        threads > 1 && macs >= multithreadMACs ? threads : 1
    }

    /// Runs `body` (one BLAS or LAPACK call) with OpenBLAS set to `threads` threads.
    ///
    /// OpenBLAS keeps one process-wide thread count, while each interpreter has its own. The gate
    /// sets the count under its lock right before the call and keeps it while calls that use it
    /// are running: calls that want the count already set run concurrently (attention heads on
    /// a parallel loop), a call that wants another count waits until those finish.
    @inline(__always)
    static func withThreads<R>(_ threads: Int, macs: Int, _ body: () -> R) -> R {
        let n = Self.threads(threads, forMACs: macs)
        gate.enter(threads: n)
        defer { gate.leave() }
        return body()
    }

    private static let gate = ThreadGate()

    /// OpenBLAS's thread count and the calls running with it; every field is read under `condition`.
    private final class ThreadGate: @unchecked Sendable {
        private let condition = NSCondition()
        /// The count OpenBLAS was last set to (the library starts with one per core: set it first).
        private var active = 0
        /// Calls running with `active`.
        private var running = 0
        /// Callers waiting to change `active`; new calls wait behind them, so a change is not
        /// starved by a stream of calls with the current count.
        private var waitingToSwitch = 0

        func enter(threads n: Int) {
            condition.lock()
            defer { condition.unlock() }
            if active != n || waitingToSwitch > 0 {
                waitingToSwitch += 1
                while running > 0 { condition.wait() }
                waitingToSwitch -= 1
                if active != n {
                    prunec_cblas_set_threads(Int32(n))
                    active = n
                }
            }
            running += 1
        }

        func leave() {
            condition.lock()
            running -= 1
            if running == 0 { condition.broadcast() }
            condition.unlock()
        }
    }

    /// Row-major single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`,
    /// with `op(A)` of shape m×k and `op(B)` of shape k×n, on at most `threads` threads.
    @inline(__always)
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // BLAS leaves C untouched when k == 0 only if beta == 1; scale explicitly.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        withThreads(threads, macs: m * n * k) {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }

    /// Double-precision GEMM, same conventions as ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:threads:)``.
    @inline(__always)
    public static func dgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int, threads: Int = 1
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        withThreads(threads, macs: m * n * k) {
            cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }

    /// Solves `A X = B` for a symmetric positive definite `n`×`n` matrix `a` (row or column major:
    /// it is symmetric) and `nrhs` right-hand sides stored one after another in `b` (each of `n`
    /// elements). `b` becomes the solution; `a` is overwritten by its Cholesky factor.
    ///
    /// `threads` is the most threads OpenBLAS may use, as for ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:threads:)``.
    ///
    /// - Returns: `false` when `a` is not positive definite (add damping and retry).
    public static func solvePositiveDefinite(_ a: inout [Double], n: Int, _ b: inout [Double], nrhs: Int, threads: Int = 1) -> Bool {
        precondition(a.count == n * n && b.count == n * nrhs)
        guard n > 0, nrhs > 0 else { return true }
        return a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                withThreads(threads, macs: n * n * (n + nrhs)) {
                    prunec_lapack_dposv(Int32(n), Int32(nrhs), ap.baseAddress!, Int32(n), bp.baseAddress!, Int32(n)) == 0
                }
            }
        }
    }

    /// Row-major single-precision matrix-vector product: `y = alpha * op(A) * x + beta * y`,
    /// with `A` of shape m×n (`op(A)` is n×m when `trans`), on at most `threads` threads.
    @inline(__always)
    public static func sgemv(
        trans: Bool, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, incx: Int = 1, beta: Float = 0, y: UnsafeMutablePointer<Float>, incy: Int = 1,
        threads: Int = 1
    ) {
        guard m > 0, n > 0 else {
            let len = trans ? n : m
            for i in 0..<len { y[i * incy] = beta == 0 ? 0 : beta * y[i * incy] }
            return
        }
        withThreads(threads, macs: m * n) {
            cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                        x, Int32(incx), beta, y, Int32(incy))
        }
    }

    /// Double-precision matrix-vector product, same conventions as ``sgemv(trans:m:n:alpha:a:lda:x:incx:beta:y:incy:threads:)``.
    @inline(__always)
    public static func dgemv(
        trans: Bool, m: Int, n: Int, alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, incx: Int = 1, beta: Double = 0, y: UnsafeMutablePointer<Double>, incy: Int = 1,
        threads: Int = 1
    ) {
        guard m > 0, n > 0 else {
            let len = trans ? n : m
            for i in 0..<len { y[i * incy] = beta == 0 ? 0 : beta * y[i * incy] }
            return
        }
        withThreads(threads, macs: m * n) {
            cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                        x, Int32(incx), beta, y, Int32(incy))
        }
    }
}
