import PruneRuntime

/// The re-fit of one linear layer `y = x·W + b` to target outputs, in double precision.
///
/// Full: minimise ‖[X 1]·[W′; b′] − Y‖² + λ‖[W′; b′] − [W; b]‖² (ridge toward the current
/// weights, so features the data barely sees keep their weights and pruned features, all zero in
/// X, keep theirs until `fold-masks` removes them). λ = damp × the mean diagonal of XᵀX.
/// Bias only: b′ = b + mean(Y − X·W − b), the least-squares optimum when only b moves.
struct LeastSquaresFit {
    /// Input rows, R×K, row major.
    var x: [Double]
    /// Target rows, R×N.
    var y: [Double]
    let rows: Int
    let k: Int
    let n: Int
    /// BLAS threads for the products and the solve.
    var threads = 1

    /// The fit's outcome: the weight change (K×N), the bias change (N, when fitted) and the
    /// relative error ‖Y − ŷ‖/‖Y‖ before and after on the fitting rows.
    struct Result {
        var deltaW: [Double]
        var deltaB: [Double]?
        var errorBefore: Double
        var errorAfter: Double
    }

    /// Residual E = Y − X·W − b (R×N).
    private func residual(w: [Double], b: [Double]?) -> [Double] {
        var e = y
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                e.withUnsafeMutableBufferPointer { ep in
                    BLAS.dgemm(transA: false, transB: false, m: rows, n: n, k: k, alpha: -1, a: xp.baseAddress!, lda: k,
                               b: wp.baseAddress!, ldb: n, beta: 1, c: ep.baseAddress!, ldc: n, threads: threads)
                }
            }
        }
        if let b {
            for r in 0 ..< rows { for j in 0 ..< n { e[r * n + j] -= b[j] } }
        }
        return e
    }

    private var targetNorm: Double { max(y.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-30) }

    private static func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// Bias compensation only.
    func fitBias(w: [Double], b: [Double]) -> Result {
        let e = residual(w: w, b: b)
        var mean = [Double](repeating: 0, count: n)
        for r in 0 ..< rows { for j in 0 ..< n { mean[j] += e[r * n + j] } }
        for j in 0 ..< n { mean[j] /= Double(max(rows, 1)) }
        var after = e
        for r in 0 ..< rows { for j in 0 ..< n { after[r * n + j] -= mean[j] } }
        return Result(deltaW: [Double](repeating: 0, count: k * n), deltaB: mean,
                      errorBefore: Self.norm(e) / targetNorm, errorAfter: Self.norm(after) / targetNorm)
    }

    /// Ridge least squares of W (and b when given).
    ///
    /// - Returns: `nil` when the damped system is still not positive definite.
    func fitFull(w: [Double], b: [Double]?, damp: Double) -> Result? {
        let e = residual(w: w, b: b)
        let k1 = k + (b == nil ? 0 : 1)
        // Xa = [X 1]; G = XaᵀXa, C = XaᵀE, written into their K1-wide layout straight from X (the
        // ones column is X's column sums and the row count): no R×K1 copy of X, which for a
        // 8192-wide layer on 2048 rows is 134 MB.
        var g = [Double](repeating: 0, count: k1 * k1)
        var c = [Double](repeating: 0, count: k1 * n)
        x.withUnsafeBufferPointer { xp in
            g.withUnsafeMutableBufferPointer { gp in
                BLAS.dgemm(transA: true, transB: false, m: k, n: k, k: rows, a: xp.baseAddress!, lda: k,
                           b: xp.baseAddress!, ldb: k, c: gp.baseAddress!, ldc: k1, threads: threads)
            }
            e.withUnsafeBufferPointer { ep in
                c.withUnsafeMutableBufferPointer { cp in
                    BLAS.dgemm(transA: true, transB: false, m: k, n: n, k: rows, a: xp.baseAddress!, lda: k,
                               b: ep.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n, threads: threads)
                }
            }
        }
        if b != nil {
            var sums = [Double](repeating: 0, count: k)
            for r in 0 ..< rows { for i in 0 ..< k { sums[i] += x[r * k + i] } }
            for i in 0 ..< k {
                g[i * k1 + k] = sums[i]
                g[k * k1 + i] = sums[i]
            }
            g[k * k1 + k] = Double(rows)
            for r in 0 ..< rows { for j in 0 ..< n { c[k * n + j] += e[r * n + j] } }
        }
        let diag = (0 ..< k1).map { g[$0 * k1 + $0] }.filter { $0 > 0 }
        let lambda = max(damp * (diag.isEmpty ? 1 : diag.reduce(0, +) / Double(diag.count)), 1e-12)
        for i in 0 ..< k1 { g[i * k1 + i] += lambda }
        // LAPACK wants the right-hand sides column by column: Cᵀ, row major.
        var rhs = [Double](repeating: 0, count: k1 * n)
        for i in 0 ..< k1 { for j in 0 ..< n { rhs[j * k1 + i] = c[i * n + j] } }
        guard BLAS.solvePositiveDefinite(&g, n: k1, &rhs, nrhs: n, threads: threads) else { return nil }
        var dw = [Double](repeating: 0, count: k * n)
        var db: [Double]? = b == nil ? nil : [Double](repeating: 0, count: n)
        for j in 0 ..< n {
            for i in 0 ..< k { dw[i * n + j] = rhs[j * k1 + i] }
            if b != nil { db![j] = rhs[j * k1 + k] }
        }
        var w2 = w
        for i in w2.indices { w2[i] += dw[i] }
        let b2 = b.map { b in zip(b, db!).map { $0 + $1 } }
        let after = residual(w: w2, b: b2)
        return Result(deltaW: dw, deltaB: db, errorBefore: Self.norm(e) / targetNorm, errorAfter: Self.norm(after) / targetNorm)
    }
}
