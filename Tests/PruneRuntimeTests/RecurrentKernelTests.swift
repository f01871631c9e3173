import Foundation
import PruneIR
import PruneRuntime
import Testing

/// RNN with an identity (Affine 1, 0) activation, so results are easy to compute by hand:
/// h_t = x_t + 0.5 · h_{t-1}.
@Suite struct RecurrentKernelTests {
    func run(direction: String) throws -> [NDArray] {
        let b = GraphBuilder(name: "rnn")
        let x = b.input("X", .float, [3, 2, 1])
        let lens = b.input("lens", .int32, [2])
        let w = b.initializer("W", Tensor(floats: [1], shape: [1, 1, 1]))
        let r = b.initializer("R", Tensor(floats: [0.5], shape: [1, 1, 1]))
        let outs = b.node(OpType("RNN"), [x, w, r, nil, lens], attributes: [
            ("hidden_size", .int(1)), ("direction", .string(direction)),
            ("activations", .strings(["Affine"])), ("activation_alpha", .floats([1])), ("activation_beta", .floats([0])),
        ], outputs: 2)
        b.output(outs[0], outs[1])
        let interpreter = try Interpreter(model: b.model(opset: 14))
        // Batch 0 runs 3 steps over 1, 2, 3; batch 1 only 1 step over 10 (20 and 30 are padding).
        return try interpreter.runOrdered([
            "X": NDArray([Float(1), 10, 2, 20, 3, 30], shape: [3, 2, 1]),
            "lens": NDArray([Int32(3), 1], shape: [2]),
        ])
    }

    @Test func forwardStopsAtSequenceLength() throws {
        let out = try run(direction: "forward")
        #expect(out[0].shape == [3, 1, 2, 1])
        #expect(out[0].scalars(as: Float.self) == [1, 10, 2.5, 0, 4.25, 0])
        #expect(out[1].scalars(as: Float.self) == [4.25, 10])
    }

    @Test func reverseStartsAtSequenceEnd() throws {
        let out = try run(direction: "reverse")
        // Batch 0: 3, then 2 + 1.5, then 1 + 1.75; batch 1 sees only its first element.
        #expect(out[0].scalars(as: Float.self) == [2.75, 10, 3.5, 0, 3, 0])
        #expect(out[1].scalars(as: Float.self) == [2.75, 10])
    }
}
