import Foundation
import PruneIR
import PruneRuntime
import Testing

/// Layout kernels on shapes large enough for their tiled and multi-threaded paths, checked
/// against direct index arithmetic.
@Suite struct LayoutKernelTests {
    /// Runs a one-node model on `inputs` with `threads` threads.
    static func run(_ op: String, _ inputs: [NDArray], attributes: [(String, Attribute)] = [], outputs: Int = 1,
                    opset: Int64 = 18, threads: Int = 4) throws -> [NDArray] {
        let b = GraphBuilder()
        let ins = inputs.enumerated().map { b.input("x\($0.offset)", $0.element.dtype, $0.element.shape) }
        let outs = b.node(OpType(op), ins, attributes: attributes, outputs: outputs)
        b.graph.outputs.append(contentsOf: outs)
        let interpreter = try Interpreter(model: b.model(opset: opset), options: .init(threads: threads))
        var feeds: [String: NDArray] = [:]
        for (v, a) in zip(ins, inputs) { feeds[v.name] = a }
        return try interpreter.runOrdered(feeds)
    }

    static func iota(_ shape: [Int]) -> NDArray {
        NDArray((0..<shape.reduce(1, *)).map { Float($0) }, shape: shape)
    }

    /// Row-major multi-index of `i` in `shape`.
    static func index(_ i: Int, _ shape: [Int]) -> [Int] {
        var r = i
        var out = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) { out[d] = r % shape[d]; r /= shape[d] }
        return out
    }

    static func offset(_ idx: [Int], _ shape: [Int]) -> Int {
        zip(idx, Broadcast.contiguousStrides(shape)).reduce(0) { $0 + $1.0 * $1.1 }
    }

    static func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { var q = p; q.insert(n - 1, at: $0); return q } }
    }

    @Test func transposeAllPermutations() throws {
        let shape = [3, 17, 40, 9]
        let x = Self.iota(shape)
        for perm in Self.permutations(4) {
            let y = try Self.run("Transpose", [x], attributes: [("perm", .ints(perm.map(Int64.init)))])[0]
            let outShape = perm.map { shape[$0] }
            #expect(y.shape == outShape)
            let got = y.scalars(as: Float.self)
            var bad = 0
            for i in 0..<y.count {
                let o = Self.index(i, outShape)
                var src = [Int](repeating: 0, count: 4)
                for (k, p) in perm.enumerated() { src[p] = o[k] }
                if got[i] != Float(Self.offset(src, shape)) { bad += 1 }
            }
            #expect(bad == 0, "perm \(perm)")
        }
    }

    @Test func transposeElementWidths() throws {
        let shape = [67, 129]
        let n = shape[0] * shape[1]
        let inputs: [NDArray] = [
            NDArray((0..<n).map { Int64($0) }, shape: shape),
            NDArray((0..<n).map { Float16(Float($0 % 2000)) }, shape: shape),
            NDArray((0..<n).map { $0 % 3 == 0 }, shape: shape),
        ]
        for x in inputs {
            let y = try Self.run("Transpose", [x])[0]
            #expect(y.shape == [129, 67])
            var bad = 0
            for i in 0..<129 { for j in 0..<67 where y.element(at: i * 67 + j) != x.element(at: j * 129 + i) { bad += 1 } }
            #expect(bad == 0, "\(x.dtype)")
        }
    }

    @Test func sliceNegativeSteps() throws {
        let shape = [20, 33, 50]
        let x = Self.iota(shape)
        let starts = NDArray([Int64(-1), 30, 2], shape: [3]), ends = NDArray([Int64.min, 1, 49], shape: [3])
        let axes = NDArray([Int64(0), 1, 2], shape: [3]), steps = NDArray([Int64(-3), -2, 5], shape: [3])
        let y = try Self.run("Slice", [x, starts, ends, axes, steps])[0]
        let rows = Array(stride(from: 19, through: 0, by: -3)), cols = Array(stride(from: 30, to: 1, by: -2))
        let deps = Array(stride(from: 2, to: 49, by: 5))
        #expect(y.shape == [rows.count, cols.count, deps.count])
        var want: [Float] = []
        for r in rows { for c in cols { for d in deps { want.append(Float(Self.offset([r, c, d], shape))) } } }
        #expect(y.scalars(as: Float.self) == want)
    }

    @Test func padModes() throws {
        let shape = [4, 5]
        let x = Self.iota(shape)
        let pads = NDArray([Int64(3), -1, 2, 4], shape: [4])
        for mode in ["constant", "reflect", "edge", "wrap"] {
            let y = try Self.run("Pad", [x, pads], attributes: [("mode", .string(mode))], opset: 19)[0]
            #expect(y.shape == [9, 8])
            var want: [Float] = []
            for o in 0..<9 {
                for p in 0..<8 {
                    var (i, j) = (o - 3, p + 1)
                    func map(_ v: Int, _ n: Int) -> Int? {
                        switch mode {
                        case "edge": return min(max(v, 0), n - 1)
                        case "wrap": return ((v % n) + n) % n
                        case "reflect":
                            var m = ((v % (2 * n - 2)) + 2 * n - 2) % (2 * n - 2)
                            if m >= n { m = 2 * n - 2 - m }
                            return m
                        default: return v >= 0 && v < n ? v : nil
                        }
                    }
                    if let a = map(i, 4), let b = map(j, 5) { (i, j) = (a, b); want.append(Float(i * 5 + j)) } else { want.append(0) }
                }
            }
            #expect(y.scalars(as: Float.self) == want, "\(mode)")
        }
    }

    @Test func expandTileAndSplitConcat() throws {
        let x = Self.iota([1, 300, 1])
        let e = try Self.run("Expand", [x, NDArray([Int64(5), 1, 70], shape: [3])])[0]
        #expect(e.shape == [5, 300, 70])
        let ev = e.scalars(as: Float.self)
        #expect((0..<e.count).allSatisfy { ev[$0] == Float(($0 / 70) % 300) })

        let t = try Self.run("Tile", [Self.iota([3, 200]), NDArray([Int64(2), 3], shape: [2])])[0]
        #expect(t.shape == [6, 600])
        let tv = t.scalars(as: Float.self)
        #expect((0..<t.count).allSatisfy { tv[$0] == Float((($0 / 600) % 3) * 200 + ($0 % 600) % 200) })

        let b = NDArray((0..<(6 * 1000)).map { $0 % 7 == 0 }, shape: [6, 1000])
        let parts = try Self.run("Split", [b, NDArray([Int64(300), 700], shape: [2])], attributes: [("axis", .int(1))], outputs: 2)
        #expect(parts.map(\.shape) == [[6, 300], [6, 700]])
        let joined = try Self.run("Concat", [parts[1], parts[0]], attributes: [("axis", .int(-1))])[0]
        var bad = 0
        for r in 0..<6 { for c in 0..<1000 where joined.element(at: r * 1000 + c) != b.element(at: r * 1000 + (c + 300) % 1000) { bad += 1 } }
        #expect(bad == 0)
    }
}
