import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// Paths of the reduction, softmax, arg/top-k and normalization kernels that the ONNX node tests
/// do not reach: transposed and strided reductions, long vectorized rows, 16-bit floats, the
/// sorting path of TopK, GroupNormalization-18 per-group parameters, several threads.
@Suite struct ReduceKernelTests {
    /// Runs one `op` node on `inputs` and returns its outputs.
    static func run(
        _ op: String, _ inputs: [NDArray], attributes: [(String, Attribute)] = [], outputs: Int = 1,
        opset: Int64 = 18, threads: Int = 2
    ) throws -> [NDArray] {
        let b = GraphBuilder(name: "t")
        let values = inputs.enumerated().map { b.input("x\($0.offset)", $0.element.dtype, $0.element.shape) }
        for v in b.node(OpType(op), values, attributes: attributes, outputs: outputs) { b.output(v) }
        let interpreter = try Interpreter(model: b.model(opset: opset), options: .init(threads: threads))
        var feeds: [String: NDArray] = [:]
        for (i, a) in inputs.enumerated() { feeds[values[i].name] = a }
        return try interpreter.runOrdered(feeds)
    }

    /// Deterministic pseudo-random floats in [-scale, scale).
    static func random(_ n: Int, seed: UInt64 = 1, scale: Float = 3) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15
        return (0..<n).map { _ in
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(s >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    static func close(_ a: [Double], _ b: [Double], tol: Double = 1e-4) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tol * (1 + abs($1)) }
    }

    /// Naive reduction: output index from the kept coordinates.
    static func naiveReduce(_ x: [Float], _ shape: [Int], _ axes: Set<Int>, _ f: ([Double]) -> Double) -> [Double] {
        let strides = Broadcast.contiguousStrides(shape)
        var groups: [[Int]: [Double]] = [:]
        for i in 0..<x.count {
            let key = shape.indices.filter { !axes.contains($0) }.map { (i / strides[$0]) % shape[$0] }
            groups[key, default: []].append(Double(x[i]))
        }
        return groups.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { f(groups[$0]!) }
    }

    @Test func reductionsOverScatteredAndMiddleAxes() throws {
        let shape = [3, 4, 5, 6]
        let data = Self.random(360)
        let x = NDArray(data, shape: shape)
        let cases: [(String, ([Double]) -> Double)] = [
            ("ReduceSum", { $0.reduce(0, +) }),
            ("ReduceMean", { $0.reduce(0, +) / Double($0.count) }),
            ("ReduceMax", { $0.max()! }),
            ("ReduceL2", { $0.map { $0 * $0 }.reduce(0, +).squareRoot() }),
            ("ReduceLogSumExp", { v in let m = v.max()!; return m + log(v.map { exp($0 - m) }.reduce(0, +)) }),
        ]
        for axes in [[0, 2], [1], [1, 2], [0, 3], [3]] {
            for (op, f) in cases {
                let y = try Self.run(op, [x, NDArray(axes.map(Int64.init), shape: [axes.count])],
                                     attributes: [("keepdims", .int(0))])[0]
                #expect(y.shape == shape.indices.filter { !axes.contains($0) }.map { shape[$0] })
                #expect(Self.close(y.doubles(), Self.naiveReduce(data, shape, Set(axes), f)), "\(op) axes \(axes)")
            }
        }
    }

    @Test func integerAndHalfReductions() throws {
        let xi = NDArray((0..<24).map { Int32($0 - 7) }, shape: [2, 3, 4])
        let s = try Self.run("ReduceSum", [xi, NDArray([Int64(1)], shape: [1])], opset: 13)[0]
        #expect(s.dtype == .int32 && s.shape == [2, 1, 4])
        #expect(s.ints() == [-9, -6, -3, 0, 27, 30, 33, 36])
        let xh = NDArray((0..<8).map { Float16($0) }, shape: [2, 4])
        let m = try Self.run("ReduceMean", [xh, NDArray([Int64(-1)], shape: [1])])[0]
        #expect(m.dtype == .float16 && m.doubles() == [1.5, 5.5])
        // Attribute axes (opset 11).
        let p = try Self.run("ReduceProd", [NDArray([Float(1), 2, 3, 4], shape: [2, 2])],
                             attributes: [("axes", .ints([0]))], opset: 11)[0]
        #expect(p.doubles() == [3, 8] && p.shape == [1, 2])
    }

    /// The vectorized float32 exp, tanh, erf and sigmoid (CKernels) against Foundation in
    /// Double, over a sweep that covers the clamps, the 16-wide loop and the padded tail.
    @Test func vectorizedTranscendentalsMatchFoundation() throws {
        var xs: [Float] = []
        var v: Float = -100
        while v < 100 { xs.append(v); v += 0.0137 }
        xs += [0, -0, 1e-5, -3e-4, .infinity, -.infinity, .nan]
        let x = NDArray(xs, shape: [xs.count])
        let cases: [(String, (Double) -> Double, Double)] = [
            ("Exp", { Foundation.exp($0) }, 0),
            ("Tanh", { Foundation.tanh($0) }, 1e-6),
            ("Erf", { Foundation.erf($0) }, 1e-6),
            ("Sigmoid", { 1 / (1 + Foundation.exp(-$0)) }, 1e-6),
        ]
        for (op, f, atol) in cases {
            let y = try Self.run(op, [x])[0].doubles()
            var worst = 0.0
            for (i, xv) in xs.enumerated() {
                let want = f(Double(xv))
                if want.isNaN { #expect(y[i].isNaN, "\(op)(\(xv))"); continue }
                if op == "Exp" && xv < -86.6 { #expect(y[i] == 0); continue }
                if want.isInfinite || Float(want).isInfinite { #expect(y[i] == Double(Float(want)), "\(op)(\(xv))"); continue }
                // Within 1e-6 relative plus `atol` absolute.
                worst = max(worst, abs(y[i] - want) / (1e-6 * abs(want) + atol))
            }
            #expect(worst < 1, "\(op): worst error \(worst) of the tolerance")
        }
    }

    @Test func softmaxRowsAndAxes() throws {
        let data = Self.random(3 * 1000, scale: 20)
        let x = NDArray(data, shape: [3, 1000])
        let y = try Self.run("Softmax", [x])[0].doubles()
        let ly = try Self.run("LogSoftmax", [x])[0].doubles()
        var want: [Double] = [], lwant: [Double] = []
        for r in 0..<3 {
            let row = data[r * 1000..<(r + 1) * 1000].map(Double.init)
            let m = row.max()!, s = row.map { exp($0 - m) }.reduce(0, +)
            want += row.map { exp($0 - m) / s }
            lwant += row.map { $0 - m - log(s) }
        }
        #expect(Self.close(y, want, tol: 1e-5))
        #expect(Self.close(ly, lwant, tol: 1e-5))
        // Axis 1 of a 3-D input (strided) against the contiguous path on a transposed copy.
        let d3 = Self.random(2 * 5 * 3)
        let s3 = try Self.run("Softmax", [NDArray(d3, shape: [2, 5, 3])], attributes: [("axis", .int(1))])[0].doubles()
        for o in 0..<2 { for j in 0..<3 {
            let col = (0..<5).map { Double(d3[o * 15 + $0 * 3 + j]) }
            let m = col.max()!, s = col.map { exp($0 - m) }.reduce(0, +)
            for i in 0..<5 { #expect(abs(s3[o * 15 + i * 3 + j] - exp(col[i] - m) / s) < 1e-6) }
        } }
        // Opset 11 coerces to 2-D at axis 1: each sample's 15 values sum to 1.
        let legacy = try Self.run("Softmax", [NDArray(d3, shape: [2, 5, 3])], opset: 11)[0].doubles()
        #expect(abs(legacy[0..<15].reduce(0, +) - 1) < 1e-5 && abs(legacy[15...].reduce(0, +) - 1) < 1e-5)
        let half = try Self.run("Softmax", [NDArray([Float16(1), 2, 3, 4], shape: [4])])[0]
        #expect(half.dtype == .float16 && abs(half.doubles().reduce(0, +) - 1) < 1e-2)
    }

    /// Row lengths on both sides of the vector widths (8 and, on AVX-512 CPUs, 16 lanes), so the
    /// vector body, the tail and short rows are all compared with a double-precision reference.
    @Test(arguments: [1, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257])
    func softmaxRowLengths(_ n: Int) throws {
        let rows = 3
        let data = Self.random(rows * n, scale: 12)
        let x = NDArray(data, shape: [rows, n])
        let y = try Self.run("Softmax", [x])[0].doubles()
        let ly = try Self.run("LogSoftmax", [x])[0].doubles()
        for r in 0..<rows {
            let row = data[r * n..<(r + 1) * n].map(Double.init)
            let m = row.max()!, s = row.map { exp($0 - m) }.reduce(0, +)
            for i in 0..<n {
                #expect(abs(y[r * n + i] - exp(row[i] - m) / s) < 2e-7, "n=\(n) row \(r) [\(i)]")
                #expect(abs(ly[r * n + i] - (row[i] - m - log(s))) < 2e-6, "n=\(n) row \(r) [\(i)] log")
            }
        }
    }

    @Test func topKSortsTiesByIndex() throws {
        let vals: [Float] = (0..<100).map { Float(($0 * 37) % 23) }
        let out = try Self.run("TopK", [NDArray(vals, shape: [1, 100]), NDArray([Int64(40)], shape: [1])],
                               outputs: 2, opset: 11)
        let order = (0..<100).sorted { vals[$0] != vals[$1] ? vals[$0] > vals[$1] : $0 < $1 }.prefix(40)
        #expect(out[1].ints() == Array(order))
        #expect(out[0].doubles() == order.map { Double(vals[$0]) })
        let small = try Self.run("TopK", [NDArray(vals, shape: [100]), NDArray([Int64(5)], shape: [1])],
                                 attributes: [("largest", .int(0))], outputs: 2, opset: 11)
        let asc = (0..<100).sorted { vals[$0] != vals[$1] ? vals[$0] < vals[$1] : $0 < $1 }.prefix(5)
        #expect(small[1].ints() == Array(asc))
        let am = try Self.run("ArgMax", [NDArray([Float(1), 3, 3, 2], shape: [4])],
                              attributes: [("select_last_index", .int(1)), ("keepdims", .int(0))], opset: 13)[0]
        #expect(am.shape == [] && am.ints() == [2])
    }

    @Test func groupNormalizationVersions() throws {
        let data = Self.random(2 * 4 * 3)
        let x = NDArray(data, shape: [2, 4, 3])
        // Opset 18: two groups, scale and bias per group; opset 21: the same per channel.
        let y18 = try Self.run("GroupNormalization", [x, NDArray([Float(2), 3], shape: [2]), NDArray([Float(1), -1], shape: [2])],
                               attributes: [("num_groups", .int(2))], opset: 18)[0].doubles()
        let y21 = try Self.run("GroupNormalization", [x, NDArray([Float(2), 2, 3, 3], shape: [4]), NDArray([Float(1), 1, -1, -1], shape: [4])],
                               attributes: [("num_groups", .int(2))], opset: 21)[0].doubles()
        #expect(Self.close(y18, y21, tol: 1e-6))
        var want: [Double] = []
        for blk in 0..<4 {
            let v = data[blk * 6..<(blk + 1) * 6].map(Double.init)
            let m = v.reduce(0, +) / 6, varr = v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 6
            let (s, b) = blk % 2 == 0 ? (2.0, 1.0) : (3.0, -1.0)
            want += v.map { ($0 - m) / (varr + 1e-5).squareRoot() * s + b }
        }
        #expect(Self.close(y18, want, tol: 1e-5))
    }

    @Test func layerNormalizationLongRowsAndDouble() throws {
        let cols = 777
        let data = Self.random(4 * cols)
        let scale = Self.random(cols, seed: 2), bias = Self.random(cols, seed: 3)
        let outs = try Self.run("LayerNormalization", [NDArray(data, shape: [4, cols]), NDArray(scale, shape: [cols]), NDArray(bias, shape: [cols])],
                                outputs: 3, opset: 17)
        let dd = data.map(Double.init)
        let outsD = try Self.run("LayerNormalization", [NDArray(dd, shape: [4, cols]), NDArray(scale.map(Double.init), shape: [cols]),
                                                        NDArray(bias.map(Double.init), shape: [cols])], opset: 17)
        var want: [Double] = []
        for r in 0..<4 {
            let v = dd[r * cols..<(r + 1) * cols]
            let m = v.reduce(0, +) / Double(cols), varr = v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(cols)
            want += v.enumerated().map { ($0.element - m) / (varr + 1e-5).squareRoot() * Double(scale[$0.offset]) + Double(bias[$0.offset]) }
        }
        #expect(Self.close(outs[0].doubles(), want, tol: 1e-5))
        #expect(outsD[0].dtype == .double && Self.close(outsD[0].doubles(), want, tol: 1e-12))
        #expect(outs[1].shape == [4, 1] && outs[2].shape == [4, 1])
    }
}
