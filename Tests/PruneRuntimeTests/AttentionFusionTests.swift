import Foundation
import PruneIR
import PruneTestSupport
import Testing

@testable import PruneRuntime

/// The attention chain (MatMul → scale → mask → Softmax → MatMul, with Casts) runs as one step
/// a block of query rows at a time, and gives the node-by-node results: in float32, in float16
/// and bfloat16 with the unfused steps' roundings, with the scale and mask in the forms exporters
/// write, with k shared by the heads (a broadcast batch), over several row blocks, and with rows
/// the mask closes entirely.
@Suite struct AttentionFusionTests {
    struct Variant: CustomTestStringConvertible, Sendable {
        var type: DType = .float
        /// "mul", "div" or "" (no scale step).
        var scale = "mul"
        /// The mask's shape (nil: no Add), given as its non-batch part for [b, h, S, T].
        var mask: [Int]? = [1, 1, 0, 0]
        /// k is [b, 1, D, T], shared by the heads.
        var sharedK = false
        /// Llama's fp16 export: Softmax in the model's type, then Cast to float32 and back.
        var castsAfterSoftmax = false
        /// Rows and columns of the scores.
        var s = 5, t = 7
        /// The mask is causal with -inf, and the first rows see nothing (NaN rows, as unfused).
        var closedRows = false
        /// The scale is a [T] vector: the fused step must run its original steps.
        var vectorScale = false

        var testDescription: String {
            "\(type) scale=\(scale)\(vectorScale ? "[T]" : "") mask=\(mask.map { "\($0)" } ?? "none") sharedK=\(sharedK) casts=\(castsAfterSoftmax) \(s)x\(t)\(closedRows ? " closed" : "")"
        }
    }

    static let variants: [Variant] = [
        Variant(),
        Variant(scale: "div", mask: nil),
        Variant(scale: "", mask: [0, 0]),
        Variant(mask: [0, 1]),
        Variant(mask: [2, 3, 0, 0], sharedK: true),
        Variant(s: 300, t: 1100),
        Variant(mask: [1, 1, 0, 0], s: 40, t: 40, closedRows: true),
        Variant(type: .float16, castsAfterSoftmax: true),
        Variant(type: .float16, scale: "div", mask: [1, 1, 0, 0], s: 130, t: 600),
        Variant(type: .bfloat16, mask: [0, 0], sharedK: true),
        Variant(vectorScale: true),
    ]

    @Test(arguments: variants)
    func fusedAttentionMatchesItsSteps(_ v: Variant) throws {
        let (b, h, d, dv) = (2, 3, 8, 6)
        let g = GraphBuilder()
        let q = g.input("q", .float, [b, h, v.s, d])
        let k = g.input("k", .float, [b, v.sharedK ? 1 : h, d, v.t])
        let vv = g.input("v", .float, [b, h, v.t, dv])
        func typed(_ x: Value) -> Value {
            v.type == .float ? x : g.add(OpType("Cast"), [x], attributes: [("to", .int(Int64(v.type.rawValue)))])
        }
        var scores = g.add(OpType("MatMul"), [typed(q), typed(k)])
        if !v.scale.isEmpty {
            let s = v.vectorScale
                ? g.initializer("scale", Tensor(name: "scale", floats: (0..<v.t).map { 0.3 + Float($0) * 0.01 }, shape: [v.t]))
                : g.initializer("scale", Tensor.scalar(v.scale == "div" ? 2.8 : 0.35))
            scores = g.add(OpType(v.scale == "div" ? "Div" : "Mul"), v.scale == "div" ? [scores, typed(s)] : [typed(s), scores])
        }
        var maskShape: [Int]? = nil
        if let m = v.mask {
            let full = [b, h, v.s, v.t]
            let shape = m.enumerated().map { i, n in n == 0 ? full[full.count - m.count + i] : n }
            maskShape = shape
            scores = g.add(OpType("Add"), [scores, typed(g.input("mask", .float, shape))])
        }
        var probs = g.add(OpType("Softmax"), [scores], attributes: [("axis", .int(-1))])
        if v.castsAfterSoftmax {
            probs = g.add(OpType("Cast"), [probs], attributes: [("to", .int(1))])
            probs = g.add(OpType("Cast"), [probs], attributes: [("to", .int(Int64(v.type.rawValue)))])
        }
        var out = g.add(OpType("MatMul"), [probs, typed(vv)])
        if v.type != .float { out = g.add(OpType("Cast"), [out], attributes: [("to", .int(1))]) }
        g.output(out)
        let model = g.model(opset: 17)

        let fused = try Interpreter(model: model, options: .init(threads: 2, profile: false))
        let plain = try Interpreter(model: model, options: .init(threads: 2, profile: false, fuse: false))
        #expect(fused.fastPlan.steps.filter { $0.op == "Attention" }.count == 1, "\(fused.fastPlan.steps.map(\.op))")
        #expect(!fused.fastPlan.steps.contains { $0.op == "Softmax" })

        var rng = SystemRandomNumberGenerator()
        func random(_ shape: [Int], _ range: ClosedRange<Float>) -> NDArray {
            NDArray((0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &rng) }, shape: shape)
        }
        var feeds = ["q": random([b, h, v.s, d], -2...2), "k": random([b, v.sharedK ? 1 : h, d, v.t], -2...2),
                     "v": random([b, h, v.t, dv], -1...1)]
        if let shape = maskShape {
            if v.closedRows {
                // Causal, and rows 0..<3 closed entirely.
                let (rows, cols) = (shape[shape.count - 2], shape[shape.count - 1])
                let outer = shape.reduce(1, *) / (rows * cols)
                let values = (0..<outer).flatMap { _ in
                    (0..<rows).flatMap { r in (0..<cols).map { c in r < 3 || c > r ? -Float.infinity : 0 } }
                }
                feeds["mask"] = NDArray(values, shape: shape)
            } else {
                feeds["mask"] = random(shape, -3...0)
            }
        }
        let a = try fused.run(feeds)[out.name]!, e = try plain.run(feeds)[out.name]!
        let kernel = try #require(fused.fastPlan.steps.first { $0.op == "Attention" }?.kernel as? AttentionChainKernel)
        #expect(kernel.fallbackRuns == (v.vectorScale ? 1 : 0))
        #expect(a.shape == e.shape)
        let x = a.doubles(), y = e.doubles()
        #expect(zip(x, y).allSatisfy { $0.0.isNaN == $0.1.isNaN }, "NaNs differ")
        let diff = zip(x, y).filter { !$0.0.isNaN }.map { abs($0 - $1) }.max() ?? 0
        // float16 and bfloat16 values are rounded where the steps round them; a product summed in
        // another order may still land on the neighbouring value.
        let tolerance = v.type == .float ? 1e-5 : v.type == .float16 ? 2e-3 : 2e-2
        #expect(diff < tolerance, "\(v.testDescription): max difference \(diff)")
        if v.closedRows { #expect(x.filter(\.isNaN).count == b * h * 3 * dv) }
    }

    /// Every attention of the example models (each Softmax is one) runs as a fused step, in
    /// both exports.
    @Test(arguments: ["bert", "bert.dynamo", "dit", "dit.dynamo", "unet", "unet.dynamo", "llama", "llama.dynamo"])
    func exampleModelsFuseTheirAttention(_ name: String) throws {
        let model = try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent("\(name).onnx"))
        let interp = try Interpreter(model: model, options: .init(profile: false))
        let count = interp.mainPlan.steps.filter { $0.op == "Softmax" }.count
        #expect(count >= 2)
        #expect(interp.fastPlan.steps.filter { $0.op == "Attention" }.count == count, "\(name)")
        // On the example's own inputs every one takes the blocked loop.
        _ = try interp.run(try PlanFusionTests.feeds(name))
        let fallbacks = interp.fastPlan.steps.compactMap { ($0.kernel as? AttentionChainKernel)?.fallbackRuns }
        #expect(fallbacks == Array(repeating: 0, count: count), "\(name)")
        // A plan for stepped runs that read layer inputs: attention alone.
        let only = try Interpreter(model: model, options: .init(profile: false, fusions: .attention))
        #expect(only.fastPlan.steps.filter { $0.op == "Attention" }.count == count)
        #expect(only.fastPlan.steps.filter { $0.op != "Attention" }.allSatisfy { s in only.mainPlan.steps.contains { $0.kernel === s.kernel } })
    }
}
