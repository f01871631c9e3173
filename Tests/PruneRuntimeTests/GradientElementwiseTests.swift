import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of the elementwise families (unary math, activations, Cast, the variadic ops, Where,
/// Softmax/LogSoftmax, Dropout) against finite differences, in float64.
struct GradientElementwiseTests {
    typealias R = GradientCheck

    /// A boolean constant.
    static func bools(_ values: [Bool], shape: [Int]) -> Tensor {
        Tensor(dtype: .bool, shape: shape, bytes: Data(values.map { $0 ? 1 : 0 }))
    }

    /// A float64 scalar constant.
    static func double(_ v: Double) -> Tensor {
        withUnsafeBytes(of: v) { Tensor(dtype: .double, shape: [], bytes: Data($0)) }
    }

    @Test(arguments: [
        ("Neg", -1.0...1.0), ("Abs", -1...1), ("Exp", -1...1), ("Log", 0.2...2), ("Sqrt", 0.2...2),
        ("Reciprocal", 0.3...2), ("Sin", -2...2), ("Cos", -2...2), ("Tan", -1...1), ("Asin", -0.9...0.9),
        ("Acos", -0.9...0.9), ("Atan", -2...2), ("Sinh", -1.5...1.5), ("Cosh", -1.5...1.5), ("Asinh", -2...2),
        ("Acosh", 1.2...3), ("Atanh", -0.9...0.9), ("Erf", -2...2),
        ("Floor", -2...2), ("Ceil", -2...2), ("Round", -2...2), ("Sign", -1...1),
    ] as [(String, ClosedRange<Double>)])
    func unaryMath(_ op: String, _ range: ClosedRange<Double>) throws {
        let x = R.random([2, 3, 4], seed: 21, in: range)
        let failures = try R.check(op, inputs: [x])
        #expect(failures.isEmpty, "\(op): \(failures.prefix(3))")
    }

    @Test func piecewiseConstantOpsHaveZeroGradient() throws {
        let x = R.random([5], seed: 22, in: -3...3)
        for op in ["Floor", "Ceil", "Round", "Sign"] {
            let b = GraphBuilder(name: "zero")
            let v = b.input("x", .double, [5])
            b.output(b.add(OpType(op), [v]))
            let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: 1, profile: false, foldConstants: false))
            let tape = try interp.runRecording(["x": x])
            let g = try tape.backward(seeds: [b.graph.outputs[0].name: R.random([5], seed: 1)], wrt: ["x"])
            #expect(g["x"]!.buffer(as: Double.self).allSatisfy { $0 == 0 }, "\(op)")
        }
    }

    @Test(arguments: [
        ("Relu", [], -1.0...1.0), ("LeakyRelu", [("alpha", 0.2)], -1...1), ("LeakyRelu", [], -1...1),
        ("Elu", [("alpha", 0.7)], -2...2), ("Selu", [], -2...2), ("Celu", [("alpha", 1.5)], -2...2),
        ("Sigmoid", [], -3...3), ("HardSigmoid", [("alpha", 0.3), ("beta", 0.4)], -4...4),
        ("HardSigmoid", [], -4...4), ("HardSwish", [], -4...4), ("Softplus", [], -3...3), ("Softsign", [], -3...3),
        ("Tanh", [], -2...2), ("Mish", [], -3...3), ("ThresholdedRelu", [("alpha", 0.4)], -1...1),
        ("Shrink", [("lambd", 0.3), ("bias", 0.1)], -1...1),
    ] as [(String, [(String, Float)], ClosedRange<Double>)])
    func activations(_ op: String, _ floats: [(String, Float)], _ range: ClosedRange<Double>) throws {
        let x = R.random([3, 4, 5], seed: 23, in: range)
        let failures = try R.check(op, inputs: [x], attributes: floats.map { ($0.0, .float($0.1)) })
        #expect(failures.isEmpty, "\(op) \(floats): \(failures.prefix(3))")
    }

    @Test(arguments: ["none", "tanh"])
    func gelu(_ approximate: String) throws {
        let x = R.random([4, 6], seed: 24, in: -3...3)
        #expect(try R.check("Gelu", inputs: [x], attributes: [("approximate", .string(approximate))], opset: 20).isEmpty)
    }

    @Test func swish() throws {
        let x = R.random([4, 6], seed: 25, in: -3...3)
        #expect(try R.check("Swish", inputs: [x], opset: 24).isEmpty)
        #expect(try R.check("Swish", inputs: [x], attributes: [("alpha", .float(1.7))], opset: 24).isEmpty)
    }

    @Test func activationsInFloat32WithinTheStatedTolerance() throws {
        let x = R.random([64], seed: 26, dtype: .float, in: -3...3)
        for op in ["Sigmoid", "Tanh", "Gelu", "Softplus", "Exp", "Erf"] {
            let failures = try R.check(op, inputs: [x], opset: 20)
            #expect(failures.isEmpty, "\(op): \(failures.prefix(3))")
        }
    }

    /// The slope: a scalar, one per channel (broadcast over space), and the full shape.
    @Test(arguments: [[1], [3, 1, 1], [2, 3, 4, 4], [4]] as [[Int]])
    func pRelu(_ slopeShape: [Int]) throws {
        let x = R.random([2, 3, 4, 4], seed: 27), slope = R.random(slopeShape, seed: 28, in: 0.1...0.5)
        let failures = try R.check("PRelu", inputs: [x, slope], probes: 40)
        #expect(failures.isEmpty, "\(slopeShape): \(failures.prefix(3))")
    }

    @Test func clipBoundsAsAttributes() throws {
        let x = R.random([4, 5], seed: 29, in: -2...2)
        #expect(try R.check("Clip", inputs: [x], attributes: [("min", .float(-0.5)), ("max", .float(0.75))], opset: 6).isEmpty)
        #expect(try R.check("Clip", inputs: [x], attributes: [("max", .float(0.25))], opset: 6).isEmpty)
        #expect(try R.check("Clip", inputs: [x], opset: 6).isEmpty)
    }

    @Test func clipBoundsAsInputsGetTheClampedElementsCotangents() throws {
        let x = R.random([4, 5], seed: 30, in: -2...2)
        let lo = NDArray(scalar: -0.5), hi = NDArray(scalar: 0.75)
        #expect(try R.check("Clip", inputs: [x, lo, hi], opset: 13).isEmpty)
        #expect(try R.check("Clip", inputs: [x, nil, hi], opset: 11).isEmpty)
        #expect(try R.check("Clip", inputs: [x, lo], opset: 13).isEmpty)
        // min > max: every element is max.
        #expect(try R.check("Clip", inputs: [x, NDArray(scalar: 0.5), NDArray(scalar: -0.5)], opset: 13).isEmpty)
        // Constant bounds (the usual case) need no gradient.
        #expect(try R.check("Clip", inputs: [x, nil, nil], constants: [1: Self.double(-0.5), 2: Self.double(0.5)], opset: 13).isEmpty)
    }

    @Test func castBetweenFloatTypes() throws {
        let x = R.random([3, 4], seed: 31, dtype: .float)
        #expect(try R.check("Cast", inputs: [x], attributes: [("to", .int(Int64(DType.double.rawValue)))]).isEmpty)
        let target = NDArray([0.0], shape: [1])
        #expect(try R.check("CastLike", inputs: [x, target], wrt: [0]).isEmpty)
        // float64 → float64 is the identity.
        let xd = R.random([3, 4], seed: 32)
        #expect(try R.check("Cast", inputs: [xd], attributes: [("to", .int(Int64(DType.double.rawValue)))]).isEmpty)
    }

    @Test func castToAnIntegerTypeHasNoGradient() throws {
        let b = GraphBuilder(name: "cast")
        let x = b.input("x", .double, [4])
        let i = b.add(OpType("Cast"), [x], attributes: [("to", .int(Int64(DType.int64.rawValue)))])
        let back = b.add(OpType("Cast"), [i], attributes: [("to", .int(Int64(DType.double.rawValue)))])
        b.output(b.add(.add, [back, x]))
        let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: 1, profile: false, foldConstants: false))
        let tape = try interp.runRecording(["x": NDArray([0.5, 1.5, -2.5, 3.0], shape: [4])])
        let g = try tape.backward(seeds: [b.graph.outputs[0].name: NDArray([1.0, 2, 3, 4], shape: [4])], wrt: ["x"])
        // Only the direct path contributes.
        #expect(g["x"]!.scalars(as: Double.self) == [1, 2, 3, 4])
    }

    @Test(arguments: ["Sum", "Mean", "Max", "Min"], [[[2, 3]], [[2, 3], [2, 3]], [[2, 3, 4], [4], [3, 1]], [[1, 5], [3, 1], []]] as [[[Int]]])
    func variadic(_ op: String, _ shapes: [[Int]]) throws {
        let inputs = shapes.enumerated().map { i, s in R.random(s, seed: 40 + UInt64(i)) as NDArray? }
        let failures = try R.check(op, inputs: inputs)
        #expect(failures.isEmpty, "\(op) \(shapes): \(failures.prefix(3))")
    }

    /// Ties in Max/Min split the cotangent equally between the inputs that attain the result.
    @Test(arguments: ["Max", "Min"])
    func variadicTiesShareTheCotangent(_ op: String) throws {
        let b = GraphBuilder(name: "ties")
        let x = b.input("x", .double, [3]), y = b.input("y", .double, [3]), z = b.input("z", .double, [1])
        b.output(b.add(OpType(op), [x, y, z]))
        let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: 1, profile: false, foldConstants: false))
        // Element 0: x and y tie; element 1: all three tie; element 2: x alone.
        let xv = NDArray([1.0, 2, op == "Max" ? 5 : -5], shape: [3]), yv = NDArray([1.0, 2, 0], shape: [3]), zv = NDArray([2.0], shape: [1])
        let zEl0: Double = op == "Max" ? 0 : 1  // z = 2 against the tie at 1: the max is 2 (z), the min is 1 (x, y).
        let tape = try interp.runRecording(["x": xv, "y": yv, "z": zv])
        let g = try tape.backward(seeds: [b.graph.outputs[0].name: NDArray([6.0, 6, 6], shape: [3])], wrt: ["x", "y", "z"])
        let gx = g["x"]!.scalars(as: Double.self), gy = g["y"]!.scalars(as: Double.self), gz = g["z"]!.scalars(as: Double.self)
        #expect(gx == [3 * zEl0, 2, 6])
        #expect(gy == [3 * zEl0, 2, 0])
        #expect(gz == [6 * (1 - zEl0) + 2])
    }

    @Test(arguments: [([2, 3], [2, 3], [2, 3]), ([2, 3, 4], [4], [3, 1]), ([4], [2, 4], []), ([1, 4], [3, 1], [3, 4])] as [([Int], [Int], [Int])])
    func whereSelects(_ shapes: ([Int], [Int], [Int])) throws {
        let shape = try Broadcast.shape([shapes.0, shapes.1, shapes.2])
        let n = shapes.0.reduce(1, *)
        let cond = Self.bools((0..<n).map { $0 % 3 != 1 }, shape: shapes.0)
        let x = R.random(shapes.1, seed: 50), y = R.random(shapes.2, seed: 51)
        let failures = try R.check("Where", inputs: [nil, x, y], constants: [0: cond])
        #expect(failures.isEmpty, "\(shapes) → \(shape): \(failures.prefix(3))")
    }

    /// Opset 13 normalizes one axis; before 13 the input is coerced to 2-D at `axis`.
    @Test(arguments: ["Softmax", "LogSoftmax"], [(13, nil), (13, 1), (13, 0), (13, -1), (11, nil), (11, 2), (11, 0), (1, 1)] as [(Int64, Int64?)])
    func softmax(_ op: String, _ variant: (Int64, Int64?)) throws {
        let x = R.random([2, 3, 4], seed: 52, in: -2...2)
        let attributes: [(String, Attribute)] = variant.1.map { [("axis", .int($0))] } ?? []
        let failures = try R.check(op, inputs: [x], attributes: attributes, opset: variant.0)
        #expect(failures.isEmpty, "\(op) \(variant): \(failures.prefix(3))")
    }

    @Test func softmaxFloat32() throws {
        let x = R.random([3, 16], seed: 53, dtype: .float, in: -2...2)
        #expect(try R.check("Softmax", inputs: [x]).isEmpty)
        #expect(try R.check("LogSoftmax", inputs: [x]).isEmpty)
    }

    @Test func dropoutInInferenceIsTheIdentity() throws {
        let x = R.random([3, 4], seed: 54)
        #expect(try R.check("Dropout", inputs: [x], attributes: [("ratio", .float(0.3))], opset: 7, outputs: 2).isEmpty)
        #expect(try R.check("Dropout", inputs: [x], opset: 10).isEmpty)
        #expect(try R.check("Dropout", inputs: [x, nil, nil], constants: [1: Self.double(0),
                                                                        2: Self.bools([false], shape: [])], opset: 13, outputs: 2).isEmpty)
    }
}
