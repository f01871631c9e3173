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
        let outs = b.node(OpType(op, domain: domain), values, attributes: attributes, outputs: outputs)
        b.graph.outputs = outs
        let model = b.model(opset: opset)
        let interp = try Interpreter(model: model, options: .init(threads: 1, profile: false, foldConstants: false))
        let targets = wrt ?? inputs.indices.filter { constants[$0] == nil && inputs[$0].map { $0.dtype == .float || $0.dtype == .double } == true }

        let tape = try interp.runRecording(feeds)
        var seeds: [String: NDArray] = [:]
        for (k, v) in outs.enumerated() {
            guard let y = tape.outputs[v.name], y.dtype == .float || y.dtype == .double else { continue }
            seeds[v.name] = random(y.shape, seed: seed &+ UInt64(k), dtype: y.dtype)
        }
        let grads = try tape.backward(seeds: seeds, wrt: targets.map { "x\($0)" })

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
        for t in targets {
            guard let x = inputs[t], let g = grads["x\(t)"] else {
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
                let xi = element(x, i)
                let h = double ? 1e-6 : 1e-2 * max(1, abs(xi))
                var plus = feeds, minus = feeds
                plus["x\(t)"] = perturbed(x, i, by: h)
                minus["x\(t)"] = perturbed(x, i, by: -h)
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
}
