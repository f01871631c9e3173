import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of the Reduce* ops against finite differences (float64): axes as an attribute (old
/// opsets) and as an input, keepdims, empty axes (all, or the identity with
/// noop_with_empty_axes), reduced axes that are not adjacent.
struct GradientReduceTests {
    typealias R = GradientCheck

    /// How a variant passes its axes.
    enum Axes {
        case attribute([Int64]), input([Int64]), none
    }

    struct Variant: CustomStringConvertible {
        var axes: Axes
        var keepdims: Int64?
        var noop = false
        var description: String { "\(axes) keepdims=\(keepdims.map(String.init) ?? "default")\(noop ? " noop" : "")" }
    }

    static let variants: [Variant] = [
        Variant(axes: .attribute([1]), keepdims: nil),
        Variant(axes: .attribute([0, 2]), keepdims: 0),
        Variant(axes: .attribute([-1]), keepdims: 1),
        Variant(axes: .none, keepdims: 0),
        Variant(axes: .input([-1]), keepdims: 0),
        Variant(axes: .input([0, 2]), keepdims: 1),
        Variant(axes: .input([1, 2]), keepdims: 0),
        Variant(axes: .none, keepdims: 1),
        Variant(axes: .none, keepdims: 1, noop: true),
    ]

    static let ops = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]

    @Test(arguments: ops, variants)
    func reduce(_ op: String, _ v: Variant) throws {
        let x = R.random([3, 4, 2], seed: 60, in: op == "ReduceLogSum" ? 0.2...2 : -1...1)
        var attributes: [(String, Attribute)] = []
        if let k = v.keepdims { attributes.append(("keepdims", .int(k))) }
        if v.noop { attributes.append(("noop_with_empty_axes", .int(1))) }
        let inputSince: Int64 = op == "ReduceSum" ? 13 : 18
        var inputs: [NDArray?] = [x]
        var constants: [Int: Tensor] = [:]
        var opset = inputSince
        switch v.axes {
        case .attribute(let a):
            attributes.append(("axes", .ints(a)))
            opset = 11
        case .input(let a):
            inputs.append(nil)
            constants[1] = Tensor(int64s: a, shape: [a.count])
        case .none:
            break
        }
        let failures = try R.check(op, inputs: inputs, constants: constants, attributes: attributes, opset: opset, probes: 24)
        #expect(failures.isEmpty, "\(op) \(v): \(failures.prefix(3))")
    }

    @Test func reduceFloat32() throws {
        let x = R.random([4, 8, 3], seed: 61, dtype: .float)
        for op in ["ReduceSum", "ReduceMean", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"] {
            let failures = try R.check(op, inputs: [x, nil], constants: [1: Tensor(int64s: [1], shape: [1])], opset: 18)
            #expect(failures.isEmpty, "\(op): \(failures.prefix(3))")
        }
    }

    /// The gradient of a product with zeros is the product of the other elements: nonzero only
    /// at a row's single zero; zero everywhere in a row with two zeros.
    @Test func reduceProdWithZeros() throws {
        let x = NDArray([0.5, 0, 2, -1.5,  0, 0, 3, 1,  1.5, -0.5, 2, 0.75], shape: [3, 4])
        #expect(try R.check("ReduceProd", inputs: [x], attributes: [("axes", .ints([1]))], opset: 13).isEmpty)
        #expect(try R.check("ReduceProd", inputs: [x], attributes: [("axes", .ints([0]))], opset: 13).isEmpty)
    }

    /// Elements tying for the maximum (minimum) share the cotangent equally.
    @Test(arguments: ["ReduceMax", "ReduceMin"])
    func tiesShareTheCotangent(_ op: String) throws {
        let b = GraphBuilder(name: "ties")
        let x = b.input("x", .double, [2, 4])
        b.output(b.add(OpType(op), [x], attributes: [("axes", .ints([1])), ("keepdims", .int(0))]))
        let interp = try Interpreter(model: b.model(opset: 13), options: .init(threads: 1, profile: false, foldConstants: false))
        let sign: Double = op == "ReduceMax" ? 1 : -1
        let xv = NDArray([1.0, 3, 3, 2, 4, 4, 4, -1].map { $0 * sign }, shape: [2, 4])
        let tape = try interp.runRecording(["x": xv])
        let g = try tape.backward(seeds: [b.graph.outputs[0].name: NDArray([1.0, 3], shape: [2])], wrt: ["x"])
        #expect(g["x"]!.scalars(as: Double.self) == [0, 0.5, 0.5, 0, 1, 1, 1, 0])
    }
}
