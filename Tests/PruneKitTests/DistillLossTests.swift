import Foundation
import PruneIR
import PruneKit
import PruneRuntime
import Testing

@testable import DistillPasses

/// Gradient checks of `distill`'s losses against central finite differences in float64: the
/// normalized output MSE, the KL on logits, and the whole objective (output loss + weighted
/// feature MSE) through the interpreter's tape with respect to every trained weight of a small
/// float64 model with a residual block. Tolerance: relative 1e-5 (step 1e-6).
struct DistillLossTests {
    func numericGradient(_ x: [Double], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
        x.indices.map { i in
            var p = x, m = x
            p[i] += h
            m[i] -= h
            return (f(p) - f(m)) / (2 * h)
        }
    }

    func close(_ a: [Double], _ b: [Double], rtol: Double = 1e-5) -> Bool {
        let scale = max(b.map(abs).max() ?? 0, 1e-8)
        return zip(a, b).allSatisfy { abs($0 - $1) <= rtol * scale + 1e-9 }
    }

    @Test func normalizedMSEGradient() {
        var rng = NoiseSource(seed: 3)
        let s = (0..<12).map { _ in rng.normal() }, t = (0..<12).map { _ in rng.normal() }
        let (_, g) = DistillLoss.normalizedMSE(student: s, teacher: t)
        let n = numericGradient(s) { DistillLoss.normalizedMSE(student: $0, teacher: t).loss }
        #expect(close(g, n), "\(g) vs \(n)")
        #expect(DistillLoss.normalizedMSE(student: t, teacher: t).loss == 0)
    }

    @Test func klGradient() {
        var rng = NoiseSource(seed: 4)
        let s = (0..<15).map { _ in 2 * rng.normal() }, t = (0..<15).map { _ in 2 * rng.normal() }
        let (l, g) = DistillLoss.kl(student: s, teacher: t, classes: 5)
        let n = numericGradient(s) { DistillLoss.kl(student: $0, teacher: t, classes: 5).loss }
        #expect(l > 0)
        #expect(close(g, n), "\(g) vs \(n)")
        #expect(abs(DistillLoss.kl(student: t, teacher: t, classes: 5).loss) < 1e-12)
    }

    /// `x → MatMul W1 → Add b1 → r = x + · → MatMul W2 → y`, float64.
    func model(seed: UInt64) -> Model {
        var rng = NoiseSource(seed: seed)
        func t(_ shape: [Int]) -> Tensor { NDArray((0..<shape.reduce(1, *)).map { _ in rng.normal() * 0.5 }, shape: shape).tensor() }
        let b = GraphBuilder()
        let x = b.input("x", .double, [2, 4])
        let h = b.add(.matMul, [x, b.initializer("W1", t([4, 4]))], name: "fc1")
        let h2 = b.add(OpType("Add"), [h, b.initializer("b1", t([4]))], name: "bias1")
        let r = b.add(OpType("Add"), [x, h2], name: "residual")
        r.name = "r"
        let y = b.add(.matMul, [r, b.initializer("W2", t([4, 3]))], name: "fc2")
        y.name = "y"
        b.output(y)
        return b.model(opset: 17)
    }

    @Test(arguments: [false, true])
    func objectiveGradientThroughTheTape(_ kl: Bool) throws {
        let teacher = model(seed: 1), student = model(seed: 2)
        let weights = try TrainableWeights(student: student, mode: .all, pattern: nil, features: ["r"])
        #expect(Set(weights.params.map(\.name)) == ["W1", "b1", "W2"])
        let options = Interpreter.Options(threads: 1, profile: false)
        let teacherCopy = try ModelImporter.load(proto: ModelExporter.proto(teacher), file: "t", baseDirectory: nil)
        teacherCopy.graph.outputs.append(try #require(teacherCopy.graph.value(named: "r")))
        let objective = DistillObjective(teacher: try Interpreter(model: teacherCopy, options: options),
                                         student: try Interpreter(model: weights.trainingModel, options: options),
                                         weights: weights, outputs: ["y"], kl: [kl], features: ["r"], featureWeight: 0.7)
        var rng = NoiseSource(seed: 9)
        let feeds = ["x": NDArray((0..<8).map { _ in rng.normal() }, shape: [2, 4])]
        let refs = try objective.teacherValues(feeds)
        let w = weights.params.map(\.values)
        let (loss, grads) = try objective.lossAndGradient(feeds, refs: refs, weights: w)
        #expect(loss > 0)
        for (k, p) in weights.params.enumerated() {
            let n = numericGradient(w[k]) { v in
                var all = w
                all[k] = v
                return (try? objective.evaluate([feeds], refs: [refs], weights: all).loss) ?? .nan
            }
            #expect(close(grads[k], n), "\(p.name) (kl=\(kl)): \(grads[k]) vs \(n)")
        }
    }

    @Test func loraGradientsFollowTheChainRule() {
        let p = TrainableWeights.Param(name: "W", input: "W.in", shape: [3, 5], dtype: .double, values: (0..<15).map { Double($0) / 10 })
        let lora = LowRankAdapters(params: [p], rank: 2)
        var rng = NoiseSource(seed: 5)
        var vars = lora.initial(rng: &rng)
        vars[1] = (0..<6).map { _ in rng.normal() }
        // L = ⟨G, W + B·A⟩ for a fixed G: ∂L/∂W' = G.
        let g = (0..<15).map { _ in rng.normal() }
        func loss(_ v: [[Double]]) -> Double { zip(lora.merged(base: [p.values], adapters: v)[0], g).reduce(0) { $0 + $1.0 * $1.1 } }
        let analytic = lora.gradients([g], adapters: vars)
        for i in 0..<2 {
            let n = numericGradient(vars[i]) { x in
                var v = vars
                v[i] = x
                return loss(v)
            }
            #expect(close(analytic[i], n), "adapter part \(i): \(analytic[i]) vs \(n)")
        }
    }

    @Test func globPatterns() {
        #expect(Glob.matches("*attn*", "down.attn1.to_q.weight"))
        #expect(!Glob.matches("*attn*", "conv_in.weight"))
        #expect(Glob.matches("layer?.w", "layer3.w"))
        #expect(Glob.matches("*", ""))
    }
}
