import Foundation
import PruneIR
import PruneRuntime
import Testing

@testable import PruneKit

/// `Validation.drift` and `Validation.latency` on models built in code.
@Suite struct DriftTests {
    /// `y = x · W` for x [1, 2], plus `k = Cast(y → int64)`, so an integer output is compared too.
    static func linear(_ w: [Float], columns: Int = 2) -> Model {
        let b = GraphBuilder(name: "linear")
        let x = b.input("x", .float, [1, 2])
        let weight = b.initializer("w", Tensor(floats: w, shape: [2, columns]))
        let y = b.add(.matMul, [x, weight], name: "mm")
        let k = b.add(.cast, [y], attributes: [("to", .int(Int64(DType.int64.rawValue)))], name: "to_int")
        b.output(y, k)
        return b.model()
    }

    /// Two sets: x = [1, 0] and x = [0, 1], so the outputs are W's rows.
    static let sets: [[String: NDArray]] = [
        ["x": NDArray([Float(1), 0], shape: [1, 2])],
        ["x": NDArray([Float(0), 1], shape: [1, 2])],
    ]

    @Test func aModelAgainstItselfHasNoDrift() throws {
        let m = Self.linear([0.5, -1.5, 2.25, 3])
        let drift = try Validation.drift(reference: m, candidate: m, inputs: Self.sets, threads: 1)
        #expect(drift.map(\.name) == ["mm_out", "to_int_out"])
        for d in drift {
            #expect(d.maxAbs == 0 && d.relL2 == 0 && d.cosine == 1, "\(d)")
        }
    }

    @Test func knownWeightChangeGivesTheHandComputedNumbers() throws {
        // W = I, W' = [[1, 0], [0, 2]]: over both sets a = [1, 0, 0, 1], b = [1, 0, 0, 2].
        // |a − b| max = 1; ‖a − b‖ = 1, ‖a‖ = √2 → relL2 = 1/√2; a·b = 3, ‖b‖ = √5 → cosine = 3/√10.
        let a = Self.linear([1, 0, 0, 1])
        let b = Self.linear([1, 0, 0, 2])
        let drift = try Validation.drift(reference: a, candidate: b, inputs: Self.sets, threads: 1)
        #expect(drift.count == 2)
        for d in drift {  // the int64 output holds the same whole numbers
            #expect(d.maxAbs == 1)
            #expect(abs(d.relL2 - 1 / 2.0.squareRoot()) < 1e-15)
            #expect(abs(d.cosine - 3 / 10.0.squareRoot()) < 1e-15)
        }
        // Over the first set alone the outputs agree.
        let first = try Validation.drift(reference: a, candidate: b, inputs: [Self.sets[0]], threads: 1)
        #expect(first[0] == OutputDrift(name: "mm_out", maxAbs: 0, relL2: 0, cosine: 1))
    }

    @Test func missingOutputsAndShapeMismatchesNameTheOutput() throws {
        let a = Self.linear([1, 0, 0, 1])
        let wide = Self.linear([1, 0, 0, 0, 1, 0], columns: 3)
        #expect(throws: DriftError.shapeMismatch(output: "mm_out", reference: [1, 2], candidate: [1, 3], set: 0)) {
            try Validation.drift(reference: a, candidate: wide, inputs: Self.sets, threads: 1)
        }
        let g = GraphBuilder()
        let x = g.input("x", .float, [1, 2])
        g.output(g.add(.identity, [x], name: "other"))
        #expect(throws: DriftError.missingOutput("mm_out")) {
            try Validation.drift(reference: a, candidate: g.model(), inputs: Self.sets, threads: 1)
        }
        #expect("\(DriftError.missingOutput("mm_out"))".contains("'mm_out'"))
    }

    @Test func driftEncodesWithSnakeCaseKeys() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        let text = String(decoding: try e.encode(OutputDrift(name: "y", maxAbs: 0.5, relL2: 0.25, cosine: 1)), as: UTF8.self)
        #expect(text == #"{"cosine":1,"max_abs":0.5,"name":"y","rel_l2":0.25}"#)
    }

    @Test func latencyIsAPositiveMedian() throws {
        let ms = try Validation.latency(model: Self.linear([1, 0, 0, 1]), inputs: Self.sets[0], runs: 3, warmup: 1, threads: 1)
        #expect(ms > 0 && ms < 10_000)
    }
}
