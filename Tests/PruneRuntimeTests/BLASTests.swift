import Foundation
import PruneIR
import Testing

@testable import PruneRuntime

/// BLAS threading: the thread count is a per-call setting, so callers with different counts can
/// run at the same time, each with its own count.
@Suite struct BLASTests {
    /// A deterministic `rows`×`cols` matrix with values in [-1, 1).
    private static func matrix(_ rows: Int, _ cols: Int, seed: Int) -> [Float] {
        (0 ..< rows * cols).map { Float((($0 * 7919 + seed * 104_729) % 2001) - 1000) / 1000 }
    }

    private static func product(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, threads: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                               b: pb.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n, threads: threads)
                }
            }
        }
        return c
    }

    /// prunec has OpenBLAS choose its kernels again when its load-time choice is older than the
    /// CPU: the in-process re-choice works, and a product is the same after returning to a set.
    @Test func kernelSetIsChosenAgainInProcess() throws {
        let (m, n, k) = (64, 48, 96)
        let a = Self.matrix(m, k, seed: 3), b = Self.matrix(k, n, seed: 4)
        let before = BLAS.coreName
        let reference = Self.product(a, b, m: m, n: n, k: k, threads: 1)
        // One exclusive section: no other test's product runs on the old kernels in between.
        let names = BLAS.choose(cores: ["Prescott", before])
        #expect(names == ["Prescott", before])
        #expect(BLAS.coreName == before)
        #expect(Self.product(a, b, m: m, n: n, k: k, threads: 1) == reference)
    }

    /// Multi-threaded products run as single-threaded calls on slices of C (rows when M is the
    /// larger side, columns otherwise), with either operand transposed.
    @Test(arguments: [(200, 40, 30), (40, 300, 30), (17, 130, 9)])
    func slicedProductsMatchANaiveReference(_ m: Int, _ n: Int, _ k: Int) {
        for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = Self.matrix(m, k, seed: 5), b = Self.matrix(k, n, seed: 6)
            // Stored transposed when asked: element (i, kk) of op(A) at kk*m + i.
            let sa = transA ? (0 ..< k * m).map { a[($0 % m) * k + $0 / m] } : a
            let sb = transB ? (0 ..< n * k).map { b[($0 % k) * n + $0 / k] } : b
            var c = [Float](repeating: 1, count: m * n)
            sa.withUnsafeBufferPointer { pa in
                sb.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        BLAS.sgemmSliced(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2, a: pa.baseAddress!,
                                         lda: transA ? m : k, b: pb.baseAddress!, ldb: transB ? k : n, beta: 0.5,
                                         c: pc.baseAddress!, ldc: n, parts: 3)
                    }
                }
            }
            var worst: Double = 0
            for i in 0 ..< m {
                for j in 0 ..< n {
                    var want: Double = 0.5
                    for kk in 0 ..< k { want += 2 * Double(a[i * k + kk]) * Double(b[kk * n + j]) }
                    worst = max(worst, abs(want - Double(c[i * n + j])))
                }
            }
            #expect(worst < 1e-4, "m \(m) n \(n) k \(k) transA \(transA) transB \(transB): \(worst)")
        }
    }

    @Test func kernelSetsRankByVectorWidth() {
        #expect(BLAS.rank("Prescott") < BLAS.rank("Sandybridge"))
        #expect(BLAS.rank("Sandybridge") < BLAS.rank("Haswell"))
        #expect(BLAS.rank("Haswell") < BLAS.rank("SkylakeX"))
        #expect(BLAS.rank("Cooperlake") == BLAS.rank("SkylakeX"))
        let fallback = BLAS.CoreChoice(detected: "Haswell", active: "Haswell", best: "Cooperlake", userSet: false)
        #expect(fallback.isGeneric)
        let chosen = BLAS.CoreChoice(detected: "Haswell", active: "Cooperlake", best: "Cooperlake", userSet: false)
        #expect(!chosen.isGeneric)
        #expect(chosen.summary.contains("OpenBLAS detected Haswell"))
        // Where prunec knows no better set (not x86), nothing is generic.
        #expect(!BLAS.CoreChoice(detected: "ARMV8", active: "ARMV8", best: "", userSet: false).isGeneric)
        // The CPU's own features, as this machine reports them, give a set OpenBLAS knows (or none).
        #expect(["", "Haswell", "SkylakeX", "Cooperlake"].contains(BLAS.coreChoice.best))
    }

    @Test func smallProductsRunOnOneThread() {
        #expect(BLAS.threads(8, forMACs: BLAS.multithreadMACs - 1) == 1)
        #expect(BLAS.threads(8, forMACs: BLAS.multithreadMACs) == 8)
        #expect(BLAS.threads(1, forMACs: 1 << 30) == 1)
    }

    @Test func productMatchesANaiveReference() {
        let (m, n, k) = (5, 7, 3)
        let a = Self.matrix(m, k, seed: 1), b = Self.matrix(k, n, seed: 2)
        let c = Self.product(a, b, m: m, n: n, k: k, threads: 1)
        for i in 0 ..< m {
            for j in 0 ..< n {
                var want: Double = 0
                for p in 0 ..< k { want += Double(a[i * k + p]) * Double(b[p * n + j]) }
                #expect(abs(Double(c[i * n + j]) - want) <= 1e-5, "c[\(i), \(j)]")
            }
        }
    }

    /// Calls asking for 1, 2 and 4 threads, above the multithreading size, run concurrently; each
    /// gives the bits of a call alone with the same count (the count can change the last bits,
    /// so a call that ran with another count than it asked for would show).
    @Test func concurrentCallsWithDifferentThreadCountsKeepTheirCounts() {
        let (m, n, k) = (256, 256, 128)
        #expect(m * n * k >= BLAS.multithreadMACs)
        let a = Self.matrix(m, k, seed: 3), b = Self.matrix(k, n, seed: 4)
        let alone = Dictionary(uniqueKeysWithValues: [1, 2, 4].map { ($0, Self.product(a, b, m: m, n: n, k: k, threads: $0)) })
        let one = alone[1] ?? []
        for t in [2, 4] {
            let diff = zip(alone[t] ?? [], one).map { abs($0 - $1) }.max() ?? .infinity
            #expect(diff <= 1e-4, "\(t) threads differ from 1 by \(diff)")
        }
        let counts = [1, 2, 4, 1, 2, 4, 1, 4]
        let results = Results(count: counts.count)
        DispatchQueue.concurrentPerform(iterations: counts.count) { i in
            var same = true
            for _ in 0 ..< 3 { same = same && Self.product(a, b, m: m, n: n, k: k, threads: counts[i]) == alone[counts[i]] }
            results.set(i, same)
        }
        #expect(results.all == Array(repeating: true, count: counts.count))
    }

    /// Thread-safe result slots for the concurrent test.
    private final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Bool]
        init(count: Int) { values = Array(repeating: false, count: count) }
        func set(_ i: Int, _ v: Bool) { lock.lock(); values[i] = v; lock.unlock() }
        var all: [Bool] { lock.lock(); defer { lock.unlock() }; return values }
    }
}
