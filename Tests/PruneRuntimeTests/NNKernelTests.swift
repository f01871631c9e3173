import Foundation
import PruneIR
import PruneRuntime
import Testing

/// Focused checks of the BLAS-backed and spatial kernels' internal paths (batch folding,
/// pointwise / depthwise / grouped convolutions, Einsum planning) against naive loops.
@Suite struct NNKernelTests {
    /// Deterministic pseudo-random values in [-1, 1).
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
        }
    }

    /// Runs a one-node model with float inputs and returns its first output.
    static func run(_ op: String, _ inputs: [(shape: [Int], values: [Float])], attributes: [(String, Attribute)] = [], opset: Int64 = 21) throws -> NDArray {
        let b = GraphBuilder(name: "t")
        var feeds: [String: NDArray] = [:]
        var vs: [Value] = []
        for (i, x) in inputs.enumerated() {
            let v = b.input("x\(i)", .float, x.shape)
            feeds[v.name] = NDArray(x.values, shape: x.shape)
            vs.append(v)
        }
        b.output(b.add(OpType(op), vs, attributes: attributes))
        return try Interpreter(model: b.model(opset: opset)).runOrdered(feeds)[0]
    }

    static func expectClose(_ got: NDArray, _ want: [Float], shape: [Int]) {
        #expect(got.shape == shape)
        let g = got.scalars(as: Float.self)
        #expect(g.count == want.count)
        var worst: Float = 0
        for (a, b) in zip(g, want) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
        #expect(worst < 1e-4, "largest relative difference \(worst)")
    }

    static func naiveMatMul(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { c[i * n + j] += a[i * k + p] * b[p * n + j] } } }
        return c
    }

    @Test func matMulFoldsAndBroadcastsBatches() throws {
        let a = Self.values(3 * 4 * 5, seed: 1), b = Self.values(5 * 6, seed: 2)
        // A batched, B single: one folded GEMM.
        var want: [Float] = []
        for i in 0..<3 { want += Self.naiveMatMul(Array(a[(i * 20)..<(i * 20 + 20)]), b, m: 4, k: 5, n: 6) }
        Self.expectClose(try Self.run("MatMul", [([3, 4, 5], a), ([5, 6], b)]), want, shape: [3, 4, 6])
        // A single, B batched (broadcast over a 2-D batch).
        let bb = Self.values(2 * 3 * 5 * 6, seed: 3), a1 = Array(a.prefix(20))
        want = []
        for i in 0..<6 { want += Self.naiveMatMul(a1, Array(bb[(i * 30)..<(i * 30 + 30)]), m: 4, k: 5, n: 6) }
        Self.expectClose(try Self.run("MatMul", [([1, 4, 5], a1), ([2, 3, 5, 6], bb)]), want, shape: [2, 3, 4, 6])
        // 1-D operands.
        Self.expectClose(try Self.run("MatMul", [([5], Array(b.prefix(5))), ([5, 6], b)]),
                         Self.naiveMatMul(Array(b.prefix(5)), b, m: 1, k: 5, n: 6), shape: [6])
    }

    /// Direct 2-D convolution.
    static func naiveConv(_ x: [Float], _ w: [Float], _ bias: [Float], n: Int, c: Int, h: Int, wd: Int, m: Int, k: Int,
                          stride: Int, pad: Int, dil: Int, group: Int) -> (values: [Float], oh: Int, ow: Int) {
        let oh = (h + 2 * pad - (k - 1) * dil - 1) / stride + 1, ow = (wd + 2 * pad - (k - 1) * dil - 1) / stride + 1
        let cg = c / group, mg = m / group
        var y = [Float](repeating: 0, count: n * m * oh * ow)
        for i in 0..<n { for oc in 0..<m { for yy in 0..<oh { for xx in 0..<ow {
            var s = bias[oc]
            let g = oc / mg
            for ic in 0..<cg { for ky in 0..<k { for kx in 0..<k {
                let iy = yy * stride - pad + ky * dil, ix = xx * stride - pad + kx * dil
                if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                s += x[((i * c + g * cg + ic) * h + iy) * wd + ix] * w[((oc * cg + ic) * k + ky) * k + kx]
            } } }
            y[((i * m + oc) * oh + yy) * ow + xx] = s
        } } } }
        return (y, oh, ow)
    }

    @Test(arguments: [
        // (c, m, k, stride, pad, dil, group)
        (8, 6, 1, 1, 0, 1, 1),   // pointwise: plain GEMM
        (4, 6, 3, 2, 1, 2, 2),   // grouped im2col with stride and dilation
        (4, 8, 3, 1, 1, 1, 4),   // depthwise with channel multiplier 2
        (3, 5, 3, 2, 0, 1, 1),   // strided, unpadded
    ])
    func convMatchesDirectLoop(_ p: (Int, Int, Int, Int, Int, Int, Int)) throws {
        try Self.expectConvMatchesDirectLoop(p, h: 9, wd: 7, seed: 4)
    }

    /// A two-image Conv of a `h`×`wd` map with the parameters `p` (c, m, k, stride, pad,
    /// dilation, group) against ``naiveConv``, on values seeded from `seed`.
    static func expectConvMatchesDirectLoop(_ p: (Int, Int, Int, Int, Int, Int, Int), h: Int, wd: Int, seed: UInt64) throws {
        let (c, m, k, s, pad, dil, g) = p
        let n = 2
        let x = values(n * c * h * wd, seed: seed), w = values(m * (c / g) * k * k, seed: seed + 1), b = values(m, seed: seed + 2)
        let want = naiveConv(x, w, b, n: n, c: c, h: h, wd: wd, m: m, k: k, stride: s, pad: pad, dil: dil, group: g)
        let got = try run("Conv", [([n, c, h, wd], x), ([m, c / g, k, k], w), ([m], b)], attributes: [
            ("strides", .ints([Int64(s), Int64(s)])), ("pads", .ints([Int64](repeating: Int64(pad), count: 4))),
            ("dilations", .ints([Int64(dil), Int64(dil)])), ("group", .int(Int64(g))),
        ])
        expectClose(got, want.values, shape: [n, m, want.oh, want.ow])
    }

    /// Windows over a map narrower than a vector, which the convolution GEMM gathers by lane masks
    /// on AVX-512: stride 1 over a map as wide as its input, dilated or not (one masked load per
    /// panel row), and a valid window, strides 2 and 3, a dilation and a 7×7 stem-like window (one
    /// gather per vector); a 17-wide kernel falls back to per-row copies.
    @Test(arguments: [
        // (c, m, k, stride, pad, dil, group)
        (6, 72, 3, 1, 1, 1, 1),  // stride 1 packs from 64 output channels
        (6, 64, 3, 1, 2, 2, 1),
        (6, 64, 3, 1, 0, 1, 1),
        (6, 12, 3, 2, 1, 1, 1),
        (6, 12, 3, 3, 1, 1, 1),
        (6, 12, 3, 2, 2, 2, 1),
        (3, 16, 7, 2, 3, 1, 1),
        (4, 10, 3, 2, 1, 1, 2),
        (2, 6, 17, 1, 8, 1, 1),
    ])
    func convWindowsOverANarrowMap(_ p: (Int, Int, Int, Int, Int, Int, Int)) throws {
        try Self.expectConvMatchesDirectLoop(p, h: 13, wd: 13, seed: 21)
    }

    /// float32 MaxPool rows (CKernels' vector loop for strides 1 and 2) on a map wider than two
    /// vectors, with pads at both ends, against a direct loop.
    @Test(arguments: [(3, 1, 1), (3, 2, 1), (2, 2, 0), (3, 3, 1)])
    func maxPoolRowsMatchDirectLoop(_ p: (k: Int, stride: Int, pad: Int)) throws {
        let (k, s, pad) = p
        let c = 3, h = 7, wd = 75
        let x = Self.values(c * h * wd, seed: 17)
        let oh = (h + 2 * pad - k) / s + 1, ow = (wd + 2 * pad - k) / s + 1
        var want = [Float](repeating: -.infinity, count: c * oh * ow)
        for ch in 0..<c { for yy in 0..<oh { for xx in 0..<ow { for ky in 0..<k { for kx in 0..<k {
            let iy = yy * s - pad + ky, ix = xx * s - pad + kx
            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
            want[(ch * oh + yy) * ow + xx] = max(want[(ch * oh + yy) * ow + xx], x[(ch * h + iy) * wd + ix])
        } } } } }
        let got = try Self.run("MaxPool", [([1, c, h, wd], x)], attributes: [
            ("kernel_shape", .ints([Int64(k), Int64(k)])), ("strides", .ints([Int64(s), Int64(s)])),
            ("pads", .ints([Int64](repeating: Int64(pad), count: 4))),
        ])
        Self.expectClose(got, want, shape: [1, c, oh, ow])
    }

    /// Windows that the convolution GEMM gathers panel by panel (CKernels' window source on
    /// AVX-512, im2col or padded rows elsewhere) on a map wider than one 48-column panel: strides
    /// 1 to 3 (stride 2 compacts 16 outputs from 32 inputs), a dilation, a 7×7 stem-like window
    /// with pads, a window wider than the padding on both sides, groups, and a 17-wide kernel.
    @Test(arguments: [
        // (c, m, k, stride, pad, dil, group)
        (5, 12, 3, 1, 1, 1, 1),
        (5, 64, 3, 1, 1, 1, 1),  // stride 1 packs from 64 output channels
        (5, 12, 3, 2, 1, 1, 1),
        (5, 12, 3, 3, 2, 1, 1),
        (5, 12, 3, 1, 2, 2, 1),
        (3, 16, 7, 2, 3, 1, 1),
        (4, 10, 5, 2, 0, 1, 2),
        (2, 6, 17, 2, 3, 1, 1),  // wider than the per-panel table of column ranges (16)
    ])
    func convWindowsOverAWideMap(_ p: (Int, Int, Int, Int, Int, Int, Int)) throws {
        try Self.expectConvMatchesDirectLoop(p, h: 11, wd: 75, seed: 14)
    }

    /// Windows the convolution GEMM reads in place on AVX-512 (fewer than 128 output channels):
    /// stride 1 over a map as wide as its input, and strided windows over the input split into
    /// phases (odd and even map sizes, strides 2 and 3, a dilation, 2×2, 5×5 and 7×7 windows),
    /// K in equal chunks (1,080 rows: three), 127 output channels (a partial panel) against 128
    /// (packed panels), each with a residual added and a clamp at 0 fused into the Conv, at 1
    /// and 2 threads, against a direct loop.
    @Test(arguments: [
        // (c, m, k, stride, pad, dil, h, wd)
        (16, 16, 3, 1, 1, 1, 12, 20),
        (5, 40, 3, 2, 1, 1, 15, 15),
        (3, 24, 7, 2, 3, 1, 20, 22),
        (4, 100, 5, 2, 2, 1, 16, 33),
        (6, 8, 3, 3, 1, 1, 15, 15),
        (4, 12, 3, 2, 2, 2, 16, 16),
        (4, 12, 2, 2, 0, 1, 16, 18),
        (120, 64, 3, 1, 1, 1, 9, 9),
        (8, 127, 3, 2, 1, 1, 10, 12),
        (8, 128, 3, 2, 1, 1, 10, 12),
    ])
    func convReadInPlaceWithResidual(_ p: (Int, Int, Int, Int, Int, Int, Int, Int)) throws {
        let (c, m, k, s, pad, dil, h, wd) = p
        let x = Self.values(c * h * wd, seed: 31), w = Self.values(m * c * k * k, seed: 32), b = Self.values(m, seed: 33)
        let conv = Self.naiveConv(x, w, b, n: 1, c: c, h: h, wd: wd, m: m, k: k, stride: s, pad: pad, dil: dil, group: 1)
        let shape = [1, m, conv.oh, conv.ow]
        let residual = Self.values(conv.values.count, seed: 34)
        let want = zip(conv.values, residual).map { max($0 + $1, 0) }
        let g = GraphBuilder(name: "t")
        let xv = g.input("x", .float, [1, c, h, wd]), rv = g.input("r", .float, shape)
        let wv = g.initializer("w", NDArray(w, shape: [m, c, k, k]).tensor())
        let bv = g.initializer("b", NDArray(b, shape: [m]).tensor())
        let y = g.add(OpType("Conv"), [xv, wv, bv], attributes: [
            ("strides", .ints([Int64(s), Int64(s)])), ("pads", .ints([Int64](repeating: Int64(pad), count: 4))),
            ("dilations", .ints([Int64(dil), Int64(dil)])),
        ])
        g.output(g.add(OpType("Relu"), [g.add(OpType("Add"), [y, rv])]))
        let model = try g.model(opset: 21)
        for threads in [1, 2] {
            let got = try Interpreter(model: model, options: .init(threads: threads))
                .runOrdered(["x": NDArray(x, shape: [1, c, h, wd]), "r": NDArray(residual, shape: shape)])[0]
            Self.expectClose(got, want, shape: shape)
        }
    }

    /// The convolution GEMM's blocking (CKernels/ConvGEMM.c) on shapes that cross every block
    /// edge: 144 rows of K (two chunks of 128), 267 output channels (two blocks of 256 rows, a
    /// partial 8-row panel), 31 × 35 grid columns (two column blocks of 960, a partial last
    /// panel) or 9 × 11 (three panels, so two threads split the rows too: 100 channels split in
    /// blocks of 40 rows, which read their rows unpacked), constant weights (packed once) and
    /// weights given as an input (packed per run), at 1 and 2 threads.
    @Test(arguments: [(1, 31, 33, 267), (2, 31, 33, 267), (1, 9, 9, 267), (2, 9, 9, 267), (2, 9, 9, 100)])
    func convCrossesEveryGemmBlock(_ p: (threads: Int, h: Int, wd: Int, m: Int)) throws {
        let (threads, h, wd, m) = p
        let n = 1, c = 16, k = 3
        let x = Self.values(n * c * h * wd, seed: 11), w = Self.values(m * c * k * k, seed: 12), b = Self.values(m, seed: 13)
        let want = Self.naiveConv(x, w, b, n: n, c: c, h: h, wd: wd, m: m, k: k, stride: 1, pad: 1, dil: 1, group: 1)
        for constantWeights in [true, false] {
            let g = GraphBuilder(name: "t")
            let xv = g.input("x", .float, [n, c, h, wd])
            var feeds = ["x": NDArray(x, shape: [n, c, h, wd])]
            let wv: Value
            if constantWeights {
                wv = g.initializer("w", NDArray(w, shape: [m, c, k, k]).tensor())
            } else {
                wv = g.input("w", .float, [m, c, k, k])
                feeds["w"] = NDArray(w, shape: [m, c, k, k])
            }
            let bv = g.initializer("b", NDArray(b, shape: [m]).tensor())
            g.output(g.add(OpType("Conv"), [xv, wv, bv], attributes: [("pads", .ints([1, 1, 1, 1]))]))
            let got = try Interpreter(model: g.model(opset: 21), options: .init(threads: threads)).runOrdered(feeds)[0]
            Self.expectClose(got, want.values, shape: [n, m, want.oh, want.ow])
        }
    }

    @Test func einsumGeneralEquations() throws {
        let a = Self.values(2 * 3 * 4, seed: 7), b = Self.values(4 * 5, seed: 8), c = Self.values(5 * 2, seed: 9)
        // Implicit output with a broadcast ellipsis: "...ij,jk" -> "...ik".
        var want: [Float] = []
        for i in 0..<2 { want += Self.naiveMatMul(Array(a[(i * 12)..<(i * 12 + 12)]), b, m: 3, k: 4, n: 5) }
        Self.expectClose(try Self.run("Einsum", [([2, 3, 4], a), ([4, 5], b)], attributes: [("equation", .string("...ij,jk"))]),
                         want, shape: [2, 3, 5])
        // Three operands.
        let ab = Self.naiveMatMul(Array(a.prefix(12)), b, m: 3, k: 4, n: 5)
        Self.expectClose(try Self.run("Einsum", [([3, 4], Array(a.prefix(12))), ([4, 5], b), ([5, 2], c)],
                                      attributes: [("equation", .string("ij,jk,kl->il"))]),
                         Self.naiveMatMul(ab, c, m: 3, k: 5, n: 2), shape: [3, 2])
        // Trace and a transposed contraction with a summed private label.
        let sq = Self.values(16, seed: 10)
        Self.expectClose(try Self.run("Einsum", [([4, 4], sq)], attributes: [("equation", .string("ii"))]),
                         [sq[0] + sq[5] + sq[10] + sq[15]], shape: [])
        var t = [Float](repeating: 0, count: 5 * 3)
        for i in 0..<3 { for k in 0..<5 { for j in 0..<4 { for z in 0..<2 { t[k * 3 + i] += a[(z * 3 + i) * 4 + j] * b[j * 5 + k] } } } }
        Self.expectClose(try Self.run("Einsum", [([2, 3, 4], a), ([4, 5], b)], attributes: [("equation", .string("zij,jk->ki"))]),
                         t, shape: [5, 3])
    }

    /// Times every model in `PRUNEC_NN_BENCH` (a folder of .onnx files) on random inputs.
    @Test func benchmark() throws {
        guard let dir = ProcessInfo.processInfo.environment["PRUNEC_NN_BENCH"], !dir.isEmpty else { return }
        let threads = Int(ProcessInfo.processInfo.environment["PRUNEC_NN_THREADS"] ?? "1") ?? 1
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".onnx") }.sorted()
        var report = ""
        for f in files {
            let model = try ModelImporter.load(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent(f))
            let interp = try Interpreter(model: model, options: .init(threads: threads, profile: false))
            var feeds: [String: NDArray] = [:]
            for v in interp.requiredInputs {
                guard case .tensor(_, let shape?)? = v.type else { continue }
                let dims = shape.dims.map { d -> Int in if case .known(let n) = d { return n }; return 1 }
                feeds[v.name] = NDArray(Self.values(dims.reduce(1, *), seed: 11), shape: dims)
            }
            for _ in 0..<3 { _ = try interp.runOrdered(feeds) }
            var times: [Double] = []
            for _ in 0..<20 {
                let t0 = Date()
                _ = try interp.runOrdered(feeds)
                times.append(Date().timeIntervalSince(t0))
            }
            times.sort()
            report += String(format: "%-24@ prunec %8.3f ms\n", f.replacingOccurrences(of: ".onnx", with: "") as NSString, times[times.count / 2] * 1e3)
        }
        print(report)
    }
}
