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
