import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of Gemm and Einsum against finite differences (float64; one float32 case each).
struct GradientEinsumGemmTests {
    typealias R = GradientCheck

    /// A Gemm case: transposes, alpha/beta, C's shape (`nil`: no C).
    struct GemmCase: CustomStringConvertible, Sendable {
        var transA = false
        var transB = false
        var alpha: Float = 1
        var beta: Float = 1
        var c: [Int]? = [3, 5]
        var description: String { "transA \(transA) transB \(transB) alpha \(alpha) beta \(beta) C \(c.map { "\($0)" } ?? "none")" }
    }

    static let gemmCases: [GemmCase] = [
        GemmCase(),
        GemmCase(transA: true),
        GemmCase(transB: true, alpha: 0.5, c: [5]),
        GemmCase(transA: true, transB: true, alpha: -1.5, beta: 2, c: [3, 1]),
        GemmCase(beta: 0.25, c: [1, 5]),
        GemmCase(alpha: 2, c: []),
        GemmCase(transB: true, c: nil),
        GemmCase(beta: 0, c: [3, 5]),
    ]

    @Test(arguments: gemmCases)
    func gemm(_ t: GemmCase) throws {
        let (m, k, n) = (3, 4, 5)
        let a = R.random(t.transA ? [k, m] : [m, k], seed: 1), b = R.random(t.transB ? [n, k] : [k, n], seed: 2)
        let c: NDArray? = t.c.map { R.random($0, seed: 3) }
        let attributes: [(String, Attribute)] = [("transA", .int(t.transA ? 1 : 0)), ("transB", .int(t.transB ? 1 : 0)),
                                                 ("alpha", .float(t.alpha)), ("beta", .float(t.beta))]
        let failures = try R.check("Gemm", inputs: c == nil ? [a, b] : [a, b, c], attributes: attributes)
        #expect(failures.isEmpty, "\(t): \(failures.prefix(3))")
    }

    @Test func gemmFloat32WithinTheStatedTolerance() throws {
        let a = R.random([6, 8], seed: 4, dtype: .float), b = R.random([4, 8], seed: 5, dtype: .float)
        let c = R.random([4], seed: 6, dtype: .float)
        let failures = try R.check("Gemm", inputs: [a, b, c], attributes: [("transB", .int(1)), ("alpha", .float(0.7))])
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    /// An Einsum case: equation and operand shapes.
    struct EinsumCase: CustomStringConvertible, Sendable {
        var equation: String
        var shapes: [[Int]]
        var description: String { "\(equation) \(shapes)" }
    }

    static let einsumCases: [EinsumCase] = [
        EinsumCase(equation: "ij,jk->ik", shapes: [[3, 4], [4, 5]]),
        EinsumCase(equation: "bij,bjk->bik", shapes: [[2, 3, 4], [2, 4, 3]]),
        EinsumCase(equation: "bhqd,bhkd->bhqk", shapes: [[1, 2, 3, 4], [1, 2, 5, 4]]),
        EinsumCase(equation: "bhqk,bhkd->bhqd", shapes: [[2, 2, 3, 4], [2, 2, 4, 3]]),
        EinsumCase(equation: "nhwpqc->nchpwq", shapes: [[1, 2, 3, 2, 2, 3]]),
        EinsumCase(equation: "ii->i", shapes: [[4, 4]]),
        EinsumCase(equation: "ii", shapes: [[3, 3]]),
        EinsumCase(equation: "ij->", shapes: [[3, 4]]),
        EinsumCase(equation: "ij->i", shapes: [[3, 4]]),
        EinsumCase(equation: "i,i->", shapes: [[5], [5]]),
        EinsumCase(equation: "i,j->ij", shapes: [[3], [4]]),
        EinsumCase(equation: "ij,jk", shapes: [[2, 3], [3, 4]]),
        EinsumCase(equation: "ij,jk,kl->il", shapes: [[2, 3], [3, 4], [4, 2]]),
        EinsumCase(equation: "...ij,...jk->...ik", shapes: [[2, 1, 3, 4], [3, 4, 2]]),
        EinsumCase(equation: "ij,ij->ij", shapes: [[3, 4], [1, 4]]),
        EinsumCase(equation: "bij,bkj->", shapes: [[2, 3, 4], [1, 2, 4]]),
        EinsumCase(equation: "iij,jk->ik", shapes: [[3, 3, 2], [2, 4]]),
        EinsumCase(equation: "bn,anm,bm->ba", shapes: [[2, 3], [4, 3, 2], [2, 2]]),
    ]

    @Test(arguments: einsumCases)
    func einsum(_ t: EinsumCase) throws {
        let xs: [NDArray?] = t.shapes.enumerated().map { i, s in R.random(s, seed: 10 + UInt64(i)) }
        let failures = try R.check("Einsum", inputs: xs, attributes: [("equation", .string(t.equation))])
        #expect(failures.isEmpty, "\(t): \(failures.prefix(3))")
    }

    @Test func einsumFloat32WithinTheStatedTolerance() throws {
        let a = R.random([2, 3, 4], seed: 20, dtype: .float), b = R.random([2, 5, 4], seed: 21, dtype: .float)
        let failures = try R.check("Einsum", inputs: [a, b], attributes: [("equation", .string("bid,bjd->bij"))])
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }
}
