import Foundation
import PruneIR
import PruneRuntime
import Testing

/// `SteppedRun`: the same outputs as a whole run, values read as they are computed, and a
/// replacement that only a value no step has read yet accepts.
@Suite struct SteppedRunTests {
    /// `y = relu(x · w1 + b1) · w2`, with w1 both an initializer and a graph input.
    static func model() -> (Model, [String: NDArray]) {
        let g = GraphBuilder(name: "two-layers")
        let x = g.input("x", .float, [3, 4])
        let w1 = g.initializer("w1", NDArray((0 ..< 20).map { Float($0 % 7) * 0.1 - 0.3 }, shape: [4, 5]).tensor())
        g.graph.addInput(w1)
        let b1 = g.initializer("b1", NDArray([Float](repeating: 0.05, count: 5), shape: [5]).tensor())
        let w2 = g.initializer("w2", NDArray((0 ..< 10).map { Float($0 % 3) * 0.2 - 0.2 }, shape: [5, 2]).tensor())
        let h = g.add(OpType("MatMul"), [x, w1], name: "fc1")
        let r = g.add(OpType("Relu"), [g.add(OpType("Add"), [h, b1], name: "bias1")], name: "relu")
        g.output(g.add(OpType("MatMul"), [r, w2], name: "fc2"))
        let feeds = ["x": NDArray((0 ..< 12).map { Float($0) * 0.25 - 1 }, shape: [3, 4])]
        return (g.model(opset: 17), feeds)
    }

    @Test func readsValuesAsTheyAreComputedAndEndsAsAWholeRun() throws {
        let (m, feeds) = Self.model()
        let interpreter = try Interpreter(model: m, options: .init(threads: 1))
        let whole = try interpreter.run(feeds)
        let fc1 = m.graph.node(named: "fc1")!.outputs[0].name
        let run = try SteppedRun(interpreter: interpreter, inputs: feeds)
        let h = try run.value(named: fc1)
        #expect(run.position == 1)
        #expect(h.shape == [3, 5])
        let out = try run.finish()
        #expect(run.position == run.stepCount)
        #expect(out.keys.sorted() == whole.keys.sorted())
        for (k, v) in whole { #expect(out[k]!.doubles() == v.doubles()) }
        // fc1's output had its last reader in the add: it is gone now.
        #expect(throws: RuntimeError.self) { _ = try run.value(named: fc1) }
    }

    @Test func replacesAValueNoStepHasRead() throws {
        let (m, feeds) = Self.model()
        let interpreter = try Interpreter(model: m, options: .init(threads: 1))
        let w1 = NDArray([Float](repeating: 0.1, count: 20), shape: [4, 5])
        let expected = try interpreter.run(feeds.merging(["w1": w1]) { $1 })
        let run = try SteppedRun(interpreter: interpreter, inputs: feeds)
        try run.replace("w1", with: w1)
        let out = try run.finish()
        for (k, v) in expected { #expect(out[k]!.doubles() == v.doubles()) }
        #expect(expected.values.first!.doubles() != (try interpreter.run(feeds)).values.first!.doubles())

        // Once fc1 has read w1, and for a value of another shape, it is an error naming the value.
        let late = try SteppedRun(interpreter: interpreter, inputs: feeds)
        _ = try late.value(named: m.graph.node(named: "fc1")!.outputs[0].name)
        #expect { try late.replace("w1", with: w1) } throws: { "\($0)".contains("'w1'") && "\($0)".contains("fc1") }
        let fresh = try SteppedRun(interpreter: interpreter, inputs: feeds)
        #expect { try fresh.replace("b1", with: NDArray([Float](repeating: 0, count: 4), shape: [4])) } throws: { "\($0)".contains("'b1'") }
        #expect { try fresh.value(named: "nope") } throws: { "\($0)".contains("'nope'") }
        // w2 is an initializer only: folding may have read it when the interpreter was built.
        #expect { try fresh.replace("w2", with: NDArray([Float](repeating: 0, count: 10), shape: [5, 2])) } throws: {
            "\($0)".contains("'w2'") && "\($0)".contains("graph input")
        }
    }

    /// With attention fused (`fusions: .attention`), a stepped run reads the values around the
    /// attention as before and ends as a whole run; the scores inside the fused step are an
    /// error naming them.
    @Test func attentionFusedRunsKeepEveryOtherValue() throws {
        let g = GraphBuilder(name: "attention")
        let x = g.input("x", .float, [1, 6, 4])
        let wq = g.initializer("wq", NDArray((0 ..< 16).map { Float($0 % 5) * 0.1 - 0.2 }, shape: [4, 4]).tensor())
        let q = g.add(OpType("MatMul"), [x, wq], name: "q")
        let kt = g.add(OpType("Transpose"), [x], attributes: [("perm", .ints([0, 2, 1]))], name: "kt")
        let scores = g.add(OpType("MatMul"), [q, kt], name: "scores")
        let probs = g.add(OpType("Softmax"), [scores], attributes: [("axis", .int(-1))], name: "softmax")
        let out = g.add(OpType("MatMul"), [probs, x], name: "values")
        g.output(g.add(OpType("MatMul"), [out, wq], name: "proj"))
        let m = g.model(opset: 17)
        let feeds = ["x": NDArray((0 ..< 24).map { Float($0 % 7) * 0.3 - 1 }, shape: [1, 6, 4])]
        let interpreter = try Interpreter(model: m, options: .init(threads: 1, fusions: .attention))
        let whole = try Interpreter(model: m, options: .init(threads: 1, fuse: false)).run(feeds)
        let run = try SteppedRun(interpreter: interpreter, inputs: feeds)
        #expect(run.stepCount == 4)
        #expect { try run.value(named: scores.name) } throws: { "\($0)".contains("fused step") && "\($0)".contains(scores.name) }
        let y = try run.value(named: out.name)
        #expect(y.shape == [1, 6, 4])
        let got = try run.finish()
        for (k, v) in whole {
            let diff = zip(got[k]!.doubles(), v.doubles()).map { abs($0 - $1) }.max() ?? 1
            #expect(diff < 1e-6)
        }
    }
}
