import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// Reverse mode through a small multi-head attention block built with the IR builder, against
/// finite differences in float64: Q/K/V projections with biases, Reshape to heads, Transpose,
/// scaled scores, (Softmax,) the weighted sum of V, heads merged back and an output projection.
/// Every weight is a graph input, so every VJP on the way is exercised for every operand.
struct GradientAttentionTests {
    typealias R = GradientCheck

    static let batch = 2, sequence = 3, width = 4, heads = 2

    /// The block's model; `softmax: false` leaves the scaled scores unnormalized.
    static func model(softmax: Bool) -> Model {
        let (n, s, d, h) = (batch, sequence, width, heads)
        let b = GraphBuilder(name: "attention")
        let x = b.input("x", .double, [n, s, d])
        func ints(_ name: String, _ v: [Int64]) -> Value { b.initializer(name, Tensor(int64s: v, shape: [v.count])) }
        let toHeads = ints("to_heads", [0, 0, Int64(h), Int64(d / h)])
        let merged = ints("merged", [0, 0, Int64(d)])
        // [n, s, d] → [n, h, s, d/h].
        func project(_ name: String) -> Value {
            let w = b.input("w\(name)", .double, [d, d]), bias = b.input("b\(name)", .double, [d])
            let y = b.add(.add, [b.add(.matMul, [x, w], name: "\(name)_proj"), bias])
            return b.add(.transpose, [b.add(OpType("Reshape"), [y, toHeads])], attributes: [("perm", .ints([0, 2, 1, 3]))], name: "\(name)_heads")
        }
        let q = project("q"), k = project("k"), v = project("v")
        let kt = b.add(.transpose, [k], attributes: [("perm", .ints([0, 1, 3, 2]))], name: "k_t")
        let scale = b.initializer("scale", NDArray([1 / Double(d / h).squareRoot()], shape: []).tensor())
        var scores = b.add(.mul, [b.add(.matMul, [q, kt], name: "scores"), scale])
        if softmax { scores = b.add(.softmax, [scores], attributes: [("axis", .int(-1))], name: "probs") }
        let context = b.add(.matMul, [scores, v], name: "context")
        let back = b.add(OpType("Reshape"), [b.add(.transpose, [context], attributes: [("perm", .ints([0, 2, 1, 3]))]), merged])
        let wo = b.input("wo", .double, [d, d]), bo = b.input("bo", .double, [d])
        b.output(b.add(.add, [b.add(.matMul, [back, wo], name: "out_proj"), bo]))
        return b.model(opset: 18)
    }

    static func feeds() -> [String: NDArray] {
        var f = ["x": R.random([batch, sequence, width], seed: 40)]
        for (i, name) in ["q", "k", "v", "o"].enumerated() {
            f["w\(name)"] = R.random([width, width], seed: 41 + UInt64(i), in: -0.7...0.7)
            f["b\(name)"] = R.random([width], seed: 51 + UInt64(i), in: -0.3...0.3)
        }
        return f
    }

    static let parameters = ["x", "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo"]

    @Test func attentionWithoutSoftmax() throws {
        let failures = try R.checkGraph(Self.model(softmax: false), feeds: Self.feeds(), wrt: Self.parameters, probes: 16)
        #expect(failures.isEmpty, "\(failures.prefix(4))")
    }

    /// The whole attention block, Softmax's VJP included.
    @Test func attentionWithSoftmax() throws {
        let failures = try R.checkGraph(Self.model(softmax: true), feeds: Self.feeds(), wrt: Self.parameters, probes: 16)
        #expect(failures.isEmpty, "\(failures.prefix(4))")
    }

    /// The key bias only shifts every score of a query by the same amount: under Softmax its
    /// gradient is zero (a check on the whole chain that finite differences alone would not make
    /// obvious).
    @Test func keyBiasHasNoGradientUnderSoftmax() throws {
        let interp = try Interpreter(model: Self.model(softmax: true), options: .init(threads: 1, profile: false, foldConstants: false))
        let tape = try interp.runRecording(Self.feeds())
        let (name, y) = try #require(tape.outputs.first)
        let g = try tape.backward(seeds: [name: R.random(y.shape, seed: 60)], wrt: ["bk", "bq"])
        let bk = try #require(g["bk"]), bq = try #require(g["bq"])
        #expect(bk.buffer(as: Double.self).allSatisfy { abs($0) < 1e-12 })
        #expect(bq.buffer(as: Double.self).contains { abs($0) > 1e-6 })
    }
}
