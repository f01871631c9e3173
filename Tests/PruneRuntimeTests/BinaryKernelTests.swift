import PruneIR
@testable import PruneRuntime
import Testing
import Foundation

/// Checks the broadcasting fast paths and general path against a naive reference, plus the
/// integer edge cases Swift would trap on.
struct BinaryKernelTests {
    /// Runs a one-node model on `inputs`, with two threads so large outputs take the parallel path.
    func run(_ op: String, _ inputs: [NDArray], attributes: [(String, Attribute)] = [], opset: Int64 = 18) throws -> NDArray {
        let b = GraphBuilder(name: "t")
        let values = inputs.enumerated().map { b.input("x\($0.offset)", $0.element.dtype, $0.element.shape) }
        b.output(b.add(OpType(op), values, attributes: attributes))
        let interp = try Interpreter(model: b.model(opset: opset), options: .init(threads: 2))
        return try interp.runOrdered(Dictionary(uniqueKeysWithValues: inputs.enumerated().map { ("x\($0.offset)", $0.element) }))[0]
    }

    /// The element of an array of `shape` that output index `flat` of `out` reads under broadcasting.
    func source(_ flat: Int, out: [Int], shape: [Int]) -> Int {
        var rem = flat, offset = 0
        let strides = Broadcast.strides(of: shape, to: out)
        for d in stride(from: out.count - 1, through: 0, by: -1) {
            offset += (rem % out[d]) * strides[d]
            rem /= out[d]
        }
        return offset
    }

    func floats(_ shape: [Int], seed: Int) -> NDArray {
        let n = shape.reduce(1, *)
        return NDArray((0..<n).map { Float(($0 * 7 + seed * 13) % 23) - 11 }, shape: shape)
    }

    @Test(arguments: [
        ([2, 3], [2, 3]), ([4, 5], []), ([], [4, 5]), ([64, 40], [40]), ([3], [5, 3]),
        ([2, 3, 4, 5], [1, 3, 1, 1]), ([3, 1], [1, 4]), ([2, 1, 4], [3, 1]), ([4, 1, 3, 1], [5, 1, 6]),
        ([64, 3, 700], [3, 1]), ([300, 1, 2], [1, 200, 1]), ([0, 3], [3]), ([1, 1], [1]),
    ] as [([Int], [Int])])
    func addSubMulDivBroadcast(_ sa: [Int], _ sb: [Int]) throws {
        let a = floats(sa, seed: 1), b = floats(sb, seed: 2)
        let shape = try Broadcast.shape([sa, sb])
        let pa = a.scalars(as: Float.self), pb = b.scalars(as: Float.self)
        for (op, f) in [("Add", { (x: Float, y: Float) in x + y }), ("Sub", { $0 - $1 }), ("Mul", { $0 * $1 }), ("Div", { $0 / $1 })] {
            let got = try run(op, [a, b])
            #expect(got.shape == shape)
            let g = got.scalars(as: Float.self)
            let want = (0..<got.count).map { f(pa[source($0, out: shape, shape: sa)], pb[source($0, out: shape, shape: sb)]) }
            #expect(g.elementsEqual(want) { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(op) \(sa) \(sb)")
        }
    }

    @Test func whereBroadcastsThreeWays() throws {
        let cs = [4, 1, 3], xs = [5, 1], ys = [1, 1, 5, 3]
        let c = NDArray((0..<12).map { $0 % 3 != 1 }, shape: cs)
        let x = NDArray((0..<5).map { Int64($0) }, shape: xs)
        let y = NDArray((0..<15).map { Int64(100 + $0) }, shape: ys)
        let got = try run("Where", [c, x, y])
        let shape = [1, 4, 5, 3]
        #expect(got.shape == shape)
        let pc = c.scalars(as: Bool.self), px = x.scalars(as: Int64.self), py = y.scalars(as: Int64.self)
        let want = (0..<60).map {
            pc[source($0, out: shape, shape: cs)] ? px[source($0, out: shape, shape: xs)] : py[source($0, out: shape, shape: ys)]
        }
        #expect(got.scalars(as: Int64.self) == want)
    }

    @Test func integerEdgeCasesDoNotTrap() throws {
        let a = NDArray([Int32.min, 7, -7, 5], shape: [4])
        let b = NDArray([Int32(-1), 0, 2, -3], shape: [4])
        #expect(try run("Div", [a, b]).scalars(as: Int32.self) == [Int32.min, 0, -3, -1])
        #expect(try run("Mod", [a, b]).scalars(as: Int32.self) == [0, 0, 1, -1])
        #expect(try run("Mod", [a, b], attributes: [("fmod", .int(1))]).scalars(as: Int32.self) == [0, 0, -1, 2])
        let s = NDArray([Int32(-1), 40, 31, -2], shape: [4])
        #expect(try run("BitShift", [a, s], attributes: [("direction", .string("LEFT"))]).scalars(as: Int32.self) == [0, 0, Int32.min, 0])
        #expect(try run("BitShift", [a, s], attributes: [("direction", .string("RIGHT"))]).scalars(as: Int32.self) == [-1, 0, -1, 0])
    }

    @Test func powSquareAndMixedTypes() throws {
        let a = NDArray([Float(-3), 0.5, 2], shape: [3])
        #expect(try run("Pow", [a, NDArray(scalar: Float(2))]).scalars(as: Float.self) == [9, 0.25, 4])
        #expect(try run("Pow", [a, NDArray([Int64(3)], shape: [1])]).scalars(as: Float.self) == [-27, 0.125, 8])
        #expect(try run("Pow", [NDArray([Int64(3), -2], shape: [2]), NDArray([Int64(3)], shape: [1])]).scalars(as: Int64.self) == [27, -8])
    }

    @Test func variadicFoldsAndMean() throws {
        let a = NDArray([Float(1), 5, -2], shape: [3]), b = NDArray([Float(4)], shape: [1]), c = NDArray([Float(0), 0, 0, 9, 9, 9], shape: [2, 3])
        #expect(try run("Max", [a, b, c]).scalars(as: Float.self) == [4, 5, 4, 9, 9, 9])
        #expect(try run("Min", [a, b, c]).scalars(as: Float.self) == [0, 0, -2, 1, 4, -2])
        #expect(try run("Sum", [a, b, c]).scalars(as: Float.self) == [5, 9, 2, 14, 18, 11])
        #expect(try run("Mean", [a, b]).scalars(as: Float.self) == [2.5, 4.5, 1])
    }
}

/// Timings of the float32 fast paths; runs only with `PRUNEC_BENCH=1` (meaningful in release builds).
struct BinaryKernelBenchmarks {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PRUNEC_BENCH"] == "1"))
    func float32Add() throws {
        for (sa, sb) in [([1024, 1024], [1024, 1024]), ([1024, 1024], []), ([4096, 256], [256]),
                         ([8, 64, 56, 56], [1, 64, 1, 1]), ([512, 512], [512, 1]), ([256, 64, 64], [1, 64, 64]), ([256, 64, 64], [256, 1, 64])] as [([Int], [Int])] {
            for threads in [1, 2] {
                let b = GraphBuilder(name: "t")
                let x = b.input("a", .float, sa), y = b.input("b", .float, sb)
                b.output(b.add(OpType("Add"), [x, y]))
                let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: threads, profile: false))
                let feeds = ["a": NDArray(zeros: .float, shape: sa), "b": NDArray(zeros: .float, shape: sb)]
                _ = try interp.run(feeds)
                let reps = 50
                let t0 = Date()
                for _ in 0..<reps { _ = try interp.run(feeds) }
                let dt = Date().timeIntervalSince(t0) / Double(reps)
                let n = sa.reduce(1, *)
                print("Add \(sa) + \(sb) threads \(threads): \(String(format: "%.3f", dt * 1e3)) ms, \(String(format: "%.2f", Double(n) / dt / 1e9)) Gelem/s")
            }
        }
    }
}
