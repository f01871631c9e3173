import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of the binary arithmetic, MatMul and the reshaping ops against finite differences, and
/// the tape's bookkeeping (accumulation over fan-out, zero gradients off the path, errors).
struct GradientTests {
    typealias R = GradientCheck

    @Test(arguments: ["Add", "Sub", "Mul", "Div"], [([2, 3], [2, 3]), ([2, 3, 4], [4]), ([3, 1], [1, 5]), ([], [2, 2])] as [([Int], [Int])])
    func binaryArithmetic(_ op: String, _ shapes: ([Int], [Int])) throws {
        let a = R.random(shapes.0, seed: 1), b = R.random(shapes.1, seed: 2, in: 0.5...2)
        let failures = try R.check(op, inputs: [a, b])
        #expect(failures.isEmpty, "\(op) \(shapes): \(failures.prefix(3))")
    }

    @Test func pow() throws {
        let a = R.random([2, 3], seed: 3, in: 0.5...2), b = R.random([3], seed: 4, in: -1.5...2.5)
        #expect(try R.check("Pow", inputs: [a, b]).isEmpty)
    }

    @Test(arguments: [([3, 4], [4, 5]), ([2, 3, 4], [4, 2]), ([2, 1, 3, 4], [5, 4, 2]), ([4], [4, 3]), ([3, 4], [4]), ([4], [4])] as [([Int], [Int])])
    func matMul(_ shapes: ([Int], [Int])) throws {
        let a = R.random(shapes.0, seed: 5), b = R.random(shapes.1, seed: 6)
        let failures = try R.check("MatMul", inputs: [a, b])
        #expect(failures.isEmpty, "\(shapes): \(failures.prefix(3))")
    }

    @Test func matMulFloat32WithinTheStatedTolerance() throws {
        let a = R.random([8, 16], seed: 8, dtype: .float), b = R.random([16, 4], seed: 9, dtype: .float)
        #expect(try R.check("MatMul", inputs: [a, b]).isEmpty)
    }

    @Test func reshapeFamily() throws {
        let x = R.random([2, 3, 4], seed: 10)
        #expect(try R.check("Reshape", inputs: [x, nil], constants: [1: Tensor(int64s: [4, -1], shape: [2])]).isEmpty)
        #expect(try R.check("Flatten", inputs: [x], attributes: [("axis", .int(2))]).isEmpty)
        #expect(try R.check("Unsqueeze", inputs: [x, nil], constants: [1: Tensor(int64s: [0], shape: [1])]).isEmpty)
        #expect(try R.check("Identity", inputs: [x]).isEmpty)
    }

    /// y = (x·W) ⊙ x + x: x fans out three ways; its gradient is the sum of the three paths, and a
    /// second input off every path gets zeros.
    @Test func fanOutAccumulatesAndUnusedInputsGetZeros() throws {
        let b = GraphBuilder(name: "fan")
        let x = b.input("x", .double, [2, 3]), w = b.input("w", .double, [3, 3]), unused = b.input("u", .double, [4])
        let xw = b.add(.matMul, [x, w])
        b.output(b.add(.add, [b.add(.mul, [xw, x]), x]), unused)
        let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: 1, profile: false, foldConstants: false))
        let xv = R.random([2, 3], seed: 11), wv = R.random([3, 3], seed: 12), uv = R.random([4], seed: 13)
        let tape = try interp.runRecording(["x": xv, "w": wv, "u": uv])
        let ones = NDArray([Double](repeating: 1, count: 6), shape: [2, 3])
        let g = try tape.backward(seeds: [b.graph.outputs[0].name: ones], wrt: ["x", "w", "u"])
        // d/dx Σ((xW)⊙x + x) = (1⊙x)Wᵀ + xW + 1.
        let xs = xv.buffer(as: Double.self), ws = wv.buffer(as: Double.self)
        for i in 0..<2 {
            for j in 0..<3 {
                var expected = 1.0
                for k in 0..<3 { expected += xs[i * 3 + k] * ws[k * 3 + j] }  // (xW)_ij
                for k in 0..<3 { expected += xs[i * 3 + k] * ws[j * 3 + k] }  // (x Wᵀ)_ij
                #expect(abs(g["x"]!.buffer(as: Double.self)[i * 3 + j] - expected) < 1e-12)
            }
        }
        #expect(g["u"]!.shape == [4] && g["u"]!.buffer(as: Double.self).allSatisfy { $0 == 0 })
        #expect(g["w"]!.shape == [3, 3])
    }

    /// Every op with a VJP is named in a gradient-check test file (the checks are per op).
    @Test func everyRegisteredVJPHasAGradientCheck() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let files = try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.hasPrefix("Gradient") && $0.lastPathComponent.hasSuffix("Tests.swift") }
        let text = try files.map { try String(contentsOf: $0, encoding: .utf8) }.joined()
        let ops = GradientRegistry.standard.operators
        #expect(ops.count >= 80, "\(ops.count) ops with a VJP")
        let unchecked = ops.filter { !text.contains("\"\($0)\"") }
        #expect(unchecked.isEmpty, "VJPs without a gradient check: \(unchecked)")
    }

    @Test func aPathThroughAnOpWithoutVJPIsAnErrorNamingIt() throws {
        let b = GraphBuilder(name: "novjp")
        let x = b.input("x", .float, [4])
        b.output(b.add(OpType("Hardmax"), [x], name: "hm"))
        let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: 1, profile: false))
        let tape = try interp.runRecording(["x": NDArray([Float](repeating: 1, count: 4), shape: [4])])
        #expect(throws: RuntimeError.self) {
            _ = try tape.backward(seeds: [b.graph.outputs[0].name: NDArray([Float](repeating: 1, count: 4), shape: [4])], wrt: ["x"])
        }
        do {
            _ = try tape.backward(seeds: [b.graph.outputs[0].name: NDArray([Float](repeating: 1, count: 4), shape: [4])], wrt: ["x"])
        } catch {
            #expect("\(error)".contains("hm") && "\(error)".contains("Hardmax"))
        }
    }
}
