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
    /// The kernel set OpenBLAS runs (`openblas_get_corename`), e.g. "SkylakeX", after
    /// ``coreChoice`` has been made.
    public static var coreName: String {
        _ = coreChoice
        return String(cString: prunec_cblas_corename())
    }

    /// How OpenBLAS's kernel set was chosen for this process.
    public struct CoreChoice: Sendable {
        /// What OpenBLAS picked by itself when it loaded.
        public var detected: String
        /// What it runs now.
        public var active: String
        /// The set that matches the CPU's features ("" when none is known, e.g. not x86).
        public var best: String
        /// Whether `OPENBLAS_CORETYPE` was set by the user (then prunec never changes the choice).
        public var userSet: Bool

        /// Whether the active set is older than the CPU allows (e.g. "Prescott" or "Haswell" on an
        /// AVX-512 machine): products run at a fraction of the speed they could.
        public var isGeneric: Bool { BLAS.rank(active) < BLAS.rank(best) }

        /// A one-line account, e.g. "SkylakeX (OpenBLAS detected Haswell; the CPU has AVX-512)".
        public var summary: String {
            if userSet { return "\(active) (OPENBLAS_CORETYPE)" }
            if active != detected { return "\(active) (OpenBLAS detected \(detected); chosen by prunec from the CPU's features)" }
            return active
        }
    }

    /// The kernel-set choice, made once before the first BLAS call.
    ///
    /// OpenBLAS maps the CPU's family and model to a kernel set when it loads; a CPU newer than
    /// the library falls back to an older set (Debian's 0.3.21 runs Haswell's AVX2 kernels on
    /// AVX-512 AMD Zen 4/5, Prescott's on some Intel server parts), which costs up to half the
    /// speed of every product. prunec reads the CPU's features itself (cpuid, and the register
    /// state the OS saves) and has OpenBLAS choose again when its set ranks below them. An
    /// explicit `OPENBLAS_CORETYPE` is always respected.
    public static let coreChoice: CoreChoice = {
        let detected = String(cString: prunec_cblas_corename())
        let best = String(cString: prunec_cpu_best_core())
        let userSet = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { !$0.isEmpty } ?? false
        var choice = CoreChoice(detected: detected, active: detected, best: best, userSet: userSet)
        if !userSet, rank(best) > rank(detected), prunec_cblas_reselect_core(best) != 0 {
            choice.active = String(cString: prunec_cblas_corename())
        }
        return choice
    }()

    /// Has OpenBLAS choose its kernel set again as if OPENBLAS_CORETYPE were each of `cores` in
    /// turn, all while no call is in flight, and returns the set it ran after each (nil where this
    /// OpenBLAS cannot choose again in process). Calls after this one run the last set. For tests
    /// and experiments: ``coreChoice`` makes the choice that matters once, by itself.
    static func choose(cores: [String]) -> [String?] {
        _ = coreChoice
        return gate.exclusive {
            cores.map { prunec_cblas_reselect_core($0) != 0 ? String(cString: prunec_cblas_corename()) : nil }
        }
    }

    /// Kernel sets by the widest vector unit they use: 3 AVX-512, 2 AVX2+FMA, 1 AVX, 0 older.
    static func rank(_ core: String) -> Int {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return 3
        case "haswell", "zen": return 2
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": return 1
        default: return 0
        }
    }

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
        _ = coreChoice
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

        /// Runs `body` while no BLAS call is in flight and none can start.
        func exclusive<R>(_ body: () -> R) -> R {
            condition.lock()
            defer { condition.unlock() }
            waitingToSwitch += 1
            while running > 0 { condition.wait() }
            waitingToSwitch -= 1
            let result = body()
            // Choosing kernels again may reset OpenBLAS's own thread count: set it on the next call.
            active = 0
            return result
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
        let parts = Self.threads(threads, forMACs: m * n * k)
        if parts > 1 {
            // Shared among the interpreter's own workers, each running a single-threaded OpenBLAS
            // call on a slice of C: one thread pool for the whole runtime, so OpenBLAS's threads
            // (which spin after each call) never compete with it for the cores.
            sgemmSliced(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                        beta: beta, c: c, ldc: ldc, parts: parts)
            return
        }
        withThreads(1, macs: m * n * k) {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }

    /// `sgemm` as `parts` single-threaded calls on slices of C's rows (when M is the larger side)
    /// or columns, on the CKernels worker pool. Slices are multiples of 16 rows or 64 columns.
    static func sgemmSliced(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int
    ) {
        let byRows = m >= n
        let total = byRows ? m : n, align = byRows ? 16 : 64
        let per = max(align, ((total + parts - 1) / parts + align - 1) / align * align)
        let slices = (total + per - 1) / per
        let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
        VectorKernels.parallelFor(threads: parts, count: slices, chunk: 1) { range in
            for s in range {
                let lo = s * per, len = min(per, total - lo)
                withThreads(1, macs: 0) {
                    if byRows {
                        // Rows lo..<lo+len of op(A): row r of op(A) starts at a + r*lda, or column r when transposed.
                        let pa = transA ? a + lo : a + lo * lda
                        cblas_sgemm(CblasRowMajor, ta, tb, Int32(len), Int32(n), Int32(k), alpha, pa, Int32(lda), b, Int32(ldb),
                                    beta, c + lo * ldc, Int32(ldc))
                    } else {
                        let pb = transB ? b + lo * ldb : b + lo
                        cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(len), Int32(k), alpha, a, Int32(lda), pb, Int32(ldb),
                                    beta, c + lo, Int32(ldc))
                    }
                }
            }
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
