import Foundation
import PruneIR
import PruneRuntime
import Testing

@testable import DistillPasses
@testable import PruneKit

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
        let teacherCopy = teacher.copy()
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

    func distill(_ text: String) throws -> DistillPass {
        var r = PassRegistry()
        r.register(DistillPass.self)
        let p = try Pipeline.parse(text)
        #expect(try Pipeline.parse(p.description) == p)
        return try #require(try r.instantiate(p, text: text).first as? DistillPass)
    }

    func calibration(_ n: Int) -> [[String: NDArray]] {
        var rng = NoiseSource(seed: 11)
        return (0..<n).map { _ in ["x": NDArray((0..<8).map { _ in rng.normal() }, shape: [2, 4])] }
    }

    @Test func optionsParseAndPrint() throws {
        let d = try distill("distill")
        #expect(d.options.steps == 100 && d.options.lr == 1e-4 && d.options.train == .all && d.options.nodes == nil && d.options.heldOut == 0.25)
        let o = try distill("distill{steps=5,train=lora,rank=2,nodes=*attn*,loss=kl,held-out=50%,feature-weight=0.0}")
        #expect(o.options.train == .lora && o.options.rank == 2 && o.options.nodes == "*attn*" && o.options.loss == .kl && o.options.heldOut == 0.5)
        #expect(throws: (any Error).self) { try distill("distill{held-out=1}") }
    }

    @Test func aStudentEqualToItsTeacherStaysUnchanged() throws {
        let teacher = model(seed: 1), student = model(seed: 1)
        let before = try NDArray(tensor: try #require(student.graph.value(named: "W1")?.initializer)).doubles()
        let context = PassContext(calibration: calibration(4), original: teacher)
        let result = try distill("distill{steps=4,eval-every=2}").run(on: student, context: context)
        #expect(!result.changed)
        #expect(result.statistics["heldout-loss-after"] == 0)
        #expect(try NDArray(tensor: try #require(student.graph.value(named: "W1")?.initializer)).doubles() == before)
    }

    @Test func trainingLowersTheHeldOutLossOfASmallModel() throws {
        let teacher = model(seed: 1), student = model(seed: 2)
        let context = PassContext(calibration: calibration(8), original: teacher)
        let result = try distill("distill{steps=60,lr=0.01,eval-every=10}").run(on: student, context: context)
        #expect(result.changed)
        #expect((result.statistics["heldout-loss-after"] ?? 1) < 0.5 * (result.statistics["heldout-loss-before"] ?? 0))
    }

    @Test func mismatchedOutputShapeIsNamed() throws {
        let teacher = model(seed: 1)
        let b = GraphBuilder()
        let x = b.input("x", .double, [2, 4])
        let y = b.add(.matMul, [x, b.initializer("W", NDArray([Double](repeating: 0.1, count: 8), shape: [4, 2]).tensor())], name: "fc")
        y.name = "y"
        b.output(y)
        let student = b.model(opset: 17)
        ShapeInference().run(on: student)
        ShapeInference().run(on: teacher)
        #expect {
            _ = try distill("distill{steps=1}").run(on: student, context: PassContext(calibration: calibration(2), original: teacher))
        } throws: { error in
            "\(error)".contains("output 'y'")
        }
        #expect {
            _ = try distill("distill{steps=1}").run(on: student, context: PassContext(calibration: [], original: teacher))
        } throws: { error in
            "\(error)".contains("calibration data")
        }
    }

    @Test func globPatterns() {
        #expect(Glob.matches("*attn*", "down.attn1.to_q.weight"))
        #expect(!Glob.matches("*attn*", "conv_in.weight"))
        #expect(Glob.matches("layer?.w", "layer3.w"))
        #expect(Glob.matches("*", ""))
    }
}
