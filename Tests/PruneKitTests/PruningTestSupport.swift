import Foundation
import PruneIR
import PruneRuntime
import Testing

@testable import PruneKit

/// Deterministic numbers for test weights and inputs (xorshift64*; no global state).
struct SeededRandom {
    private var state: UInt64

    init(_ seed: UInt64) { state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1 }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    /// Uniform in [-scale, scale).
    mutating func float(scale: Float = 1) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }

    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0 ..< n).map { _ in float(scale: scale) } }

    mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }

    /// `count` distinct indices of `0..<n`, sorted.
    mutating func choose(_ count: Int, of n: Int) -> [Int] {
        var all = Array(0 ..< n)
        for i in 0 ..< count { all.swapAt(i, i + int(below: n - i)) }
        return all.prefix(count).sorted()
    }
}

/// Running models and comparing what they compute.
enum PruneCheck {
    /// Runs `model` on the interpreter.
    static func run(_ model: Model, _ feeds: [String: NDArray]) throws -> [String: NDArray] {
        try Interpreter(model: model, options: .init(threads: 1, profile: false)).run(feeds)
    }

    /// Largest `|a - b|` (infinity when the shapes differ).
    static func maxAbsDiff(_ a: NDArray, _ b: NDArray) -> Float {
        guard a.shape == b.shape else { return .infinity }
        let x = a.scalars(as: Float.self), y = b.scalars(as: Float.self)
        return zip(x, y).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Runs both models and returns, per output of `reference`, the largest difference.
    static func compare(_ reference: Model, _ candidate: Model, _ feeds: [String: NDArray]) throws -> [String: Float] {
        let r = try run(reference, feeds), c = try run(candidate, feeds)
        var out: [String: Float] = [:]
        for v in reference.graph.outputs {
            guard let a = r[v.name], let b = c[v.name] else {
                out[v.name] = .infinity
                continue
            }
            out[v.name] = maxAbsDiff(a, b)
        }
        return out
    }

    /// Elements of every floating-point initializer (weights, biases, norm parameters, masks).
    static func floatParams(_ model: Model) -> Int {
        model.graph.initializers.compactMap(\.initializer).filter { $0.dtype == .float }.reduce(0) { $0 + $1.elementCount }
    }

    /// Gates left in the model (Mul nodes reading a mask initializer).
    static func gateCount(_ model: Model) -> Int {
        model.graph.nodes.filter { n in n.opType == .mul && n.inputs.contains { $0.map(Masks.isMask) ?? false } }.count
    }

    /// Keep flags per unit: `false` for the units listed.
    static func keep(_ units: Int, removing removed: [Int]) -> [Float] {
        (0 ..< units).map { removed.contains($0) ? 0 : 1 }
    }
}

/// Small graph-building shortcuts shared by the pruning tests.
extension GraphBuilder {
    func floats(_ name: String, _ shape: [Int], _ rng: inout SeededRandom, scale: Float) -> Value {
        initializer(name, Tensor(floats: rng.floats(shape.reduce(1, *), scale: scale), shape: shape))
    }

    func int64s(_ name: String, _ values: [Int64]) -> Value {
        initializer(name, Tensor(int64s: values, shape: [values.count]))
    }

    /// A `Constant` node holding `values` (1-D int64), as the TorchScript exporter writes them.
    func constant(_ values: [Int64], name: String = "Constant") -> Value {
        add(.constant, [], attributes: [("value", .tensor(Tensor(int64s: values, shape: [values.count])))], name: name)
    }

    /// A scalar `Constant`.
    func constant(scalar value: Int64) -> Value {
        add(.constant, [], attributes: [("value", .tensor(Tensor.scalar(value)))], name: "Constant")
    }

    func constant(float value: Float) -> Value {
        add(.constant, [], attributes: [("value", .tensor(Tensor.scalar(value)))], name: "Constant")
    }

    /// `Conv` (3×3 "same" when `kernel` is 3) with a bias.
    func conv(_ x: Value, _ name: String, in cin: Int, out cout: Int, kernel: Int = 3, group: Int = 1, _ rng: inout SeededRandom) -> Value {
        let w = floats("\(name).weight", [cout, cin / group, kernel, kernel], &rng, scale: 1 / Float(cin / group * kernel * kernel).squareRoot())
        let b = floats("\(name).bias", [cout], &rng, scale: 0.1)
        let p = Int64(kernel / 2)
        return add(.conv, [x, w, b], attributes: [("pads", .ints([p, p, p, p])), ("group", .int(Int64(group)))], name: name)
    }

    /// `MatMul` by a `[n, m]` weight, then `Add` of a bias.
    func linear(_ x: Value, _ name: String, _ n: Int, _ m: Int, _ rng: inout SeededRandom, bias: Bool = true) -> Value {
        let y = add(.matMul, [x, floats("\(name).weight", [n, m], &rng, scale: 1 / Float(n).squareRoot())], name: "\(name)/MatMul")
        guard bias else { return y }
        return add(.add, [y, floats("\(name).bias", [m], &rng, scale: 0.1)], name: "\(name)/Add")
    }
}

extension NDArray {
    /// Deterministic float input.
    static func random(_ shape: [Int], _ rng: inout SeededRandom, scale: Float = 1) -> NDArray {
        NDArray(rng.floats(shape.reduce(1, *), scale: scale), shape: shape)
    }
}
