import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// Checks a VJP against central finite differences of `L = Σ_k ⟨w_k, y_k⟩` (random `w`, seeded)
/// on a one-node model.
///
/// float64 inputs (preferred where the kernel runs float64): step 1e-6, tolerance 1e-6 + 1e-5·|g|.
/// float32 inputs: step 1e-2 (times max(1, |x|)), tolerance 2e-3 + 2e-2·|g| — float32 rounding of
/// the forward pass limits what finite differences can resolve.
enum GradientCheck {
    struct Failure: CustomStringConvertible {
        var input: Int
        var index: Int
        var analytic: Double
        var numeric: Double
        var description: String { "input \(input)[\(index)]: VJP \(analytic), finite difference \(numeric)" }
    }

    /// Deterministic values in [-1, 1] (or `lo...hi`).
    static func random(_ shape: [Int], seed: UInt64, dtype: DType = .double, in range: ClosedRange<Double> = -1...1) -> NDArray {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        let n = shape.reduce(1, *)
        let values: [Double] = (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return range.lowerBound + (range.upperBound - range.lowerBound) * Double(s >> 11) / Double(1 << 53)
        }
        return dtype == .double ? NDArray(values, shape: shape) : NDArray(values.map { Float($0) }, shape: shape)
    }

    static func element(_ a: NDArray, _ i: Int) -> Double {
        a.dtype == .double ? a.buffer(as: Double.self)[i] : Double(a.buffer(as: Float.self)[i])
    }

    static func perturbed(_ a: NDArray, _ i: Int, by d: Double) -> NDArray {
        let c = a.copy()
        if c.dtype == .double { c.buffer(as: Double.self)[i] += d } else { c.buffer(as: Float.self)[i] += Float(d) }
        return c
    }

    /// A model of one `op` node on `inputs`, its outputs the graph's outputs, and its feeds: input
    /// `i` is the graph input `x<i>`, the initializer `c<i>` when in `constants`, omitted when `nil`.
    static func oneNodeModel(_ op: String, domain: String = "", inputs: [NDArray?], constants: [Int: Tensor] = [:],
                             attributes: [(String, Attribute)] = [], opset: Int64 = 18,
                             outputs: Int = 1) -> (model: Model, feeds: [String: NDArray]) {
        let b = GraphBuilder(name: "grad")
        var values: [Value?] = []
        var feeds: [String: NDArray] = [:]
        for (i, x) in inputs.enumerated() {
            if let t = constants[i] {
                values.append(b.initializer("c\(i)", t))
            } else if let x {
                values.append(b.input("x\(i)", x.dtype, x.shape))
                feeds["x\(i)"] = x
            } else {
                values.append(nil)
            }
        }
        b.graph.outputs = b.node(OpType(op, domain: domain), values, attributes: attributes, outputs: outputs)
        return (b.model(opset: opset), feeds)
    }

    /// Runs the check; returns the failures (empty when the VJP agrees everywhere it was probed).
    ///
    /// - Parameters:
    ///   - inputs: The node's inputs; `nil` for omitted optional inputs.
    ///   - constants: Inputs given as initializers (shapes, axes, indices) by position.
    ///   - wrt: Which inputs to differentiate (default: every float input that is not a constant).
    ///   - probes: Elements probed per input (all when the input is smaller).
    static func check(_ op: String, domain: String = "", inputs: [NDArray?], constants: [Int: Tensor] = [:],
                      attributes: [(String, Attribute)] = [], opset: Int64 = 18, outputs: Int = 1,
                      wrt: [Int]? = nil, probes: Int = 24, seed: UInt64 = 7) throws -> [Failure] {
        let (model, feeds) = oneNodeModel(op, domain: domain, inputs: inputs, constants: constants, attributes: attributes,
                                          opset: opset, outputs: outputs)
        let targets = wrt ?? inputs.indices.filter { constants[$0] == nil && inputs[$0].map { $0.dtype == .float || $0.dtype == .double } == true }
        return try checkGraph(model, feeds: feeds, wrt: targets.map { "x\($0)" }, labels: targets, probes: probes, seed: seed)
    }

    /// ``check(_:domain:inputs:constants:attributes:opset:outputs:wrt:probes:seed:)`` for a whole
    /// model: finite differences of `L = Σ_k ⟨w_k, y_k⟩` over its float outputs, for the graph
    /// inputs named in `wrt`. A failure names an input by its `labels` entry (default: its
    /// position in `wrt`), which also seeds the choice of probed elements.
    static func checkGraph(_ model: Model, feeds: [String: NDArray], wrt: [String], labels: [Int]? = nil,
                           probes: Int = 24, seed: UInt64 = 7) throws -> [Failure] {
        let interp = try Interpreter(model: model, options: .init(threads: 1, profile: false, foldConstants: false))
        let tape = try interp.runRecording(feeds)
        var seeds: [String: NDArray] = [:]
        for (k, v) in model.graph.outputs.enumerated() {
            guard let y = tape.outputs[v.name], y.dtype == .float || y.dtype == .double else { continue }
            seeds[v.name] = random(y.shape, seed: seed &+ UInt64(k), dtype: y.dtype)
        }
        let grads = try tape.backward(seeds: seeds, wrt: wrt)

        func loss(_ f: [String: NDArray]) throws -> Double {
            let ys = try interp.run(f)
            var l = 0.0
            for (name, w) in seeds {
                guard let y = ys[name] else { continue }
                for i in 0..<y.count { l += element(w, i) * element(y, i) }
            }
            return l
        }
        var failures: [Failure] = []
        for (position, name) in wrt.enumerated() {
            let t = labels?[position] ?? position
            guard let x = feeds[name], let g = grads[name], g.shape == x.shape else {
                failures.append(Failure(input: t, index: -1, analytic: .nan, numeric: .nan))
                continue
            }
            let double = x.dtype == .double
            var indices = Array(0..<x.count)
            if indices.count > probes {
                var s = seed &+ UInt64(t) &* 31
                indices = (0..<probes).map { _ in
                    s = s &* 6364136223846793005 &+ 1442695040888963407
                    return Int(s >> 33) % x.count
                }
            }
            for i in indices {
                let h = double ? 1e-6 : 1e-2 * max(1, abs(element(x, i)))
                var plus = feeds, minus = feeds
                plus[name] = perturbed(x, i, by: h)
                minus[name] = perturbed(x, i, by: -h)
                let numeric = (try loss(plus) - loss(minus)) / (2 * h)
                let analytic = element(g, i)
                let tol = double ? 1e-6 + 1e-5 * max(abs(analytic), abs(numeric)) : 2e-3 + 2e-2 * max(abs(analytic), abs(numeric))
                if !(abs(analytic - numeric) <= tol) {
                    failures.append(Failure(input: t, index: i, analytic: analytic, numeric: numeric))
                }
            }
        }
        return failures
    }

    /// The gradients of `Σ w·y` (seeded `w`) for every float input of a one-node model run on
    /// `threads` threads, by input index.
    static func gradients(_ op: String, inputs: [NDArray?], constants: [Int: Tensor] = [:], attributes: [(String, Attribute)] = [],
                          opset: Int64 = 18, threads: Int) throws -> [[Double]] {
        let (model, feeds) = oneNodeModel(op, inputs: inputs, constants: constants, attributes: attributes, opset: opset)
        let y = model.graph.outputs[0]
        let interp = try Interpreter(model: model, options: .init(threads: threads, profile: false, foldConstants: false))
        let tape = try interp.runRecording(feeds)
        let out = tape.outputs[y.name]!
        let names = feeds.keys.sorted()
        let g = try tape.backward(seeds: [y.name: random(out.shape, seed: 5, dtype: out.dtype)], wrt: names)
        return names.map { g[$0]!.doubles() }
    }

    /// Whether the gradients on 1 and on 4 threads agree to `tolerance` (relative to the largest).
    static func threadsAgree(_ op: String, inputs: [NDArray?], constants: [Int: Tensor] = [:], attributes: [(String, Attribute)] = [],
                             opset: Int64 = 18, tolerance: Double = 1e-12) throws -> Bool {
        let serial = try gradients(op, inputs: inputs, constants: constants, attributes: attributes, opset: opset, threads: 1)
        let parallel = try gradients(op, inputs: inputs, constants: constants, attributes: attributes, opset: opset, threads: 4)
        for (a, b) in zip(serial, parallel) {
            let scale = max(1, a.map(abs).max() ?? 0)
            guard a.count == b.count, zip(a, b).allSatisfy({ abs($0 - $1) <= tolerance * scale }) else { return false }
        }
        return true
    }
}
