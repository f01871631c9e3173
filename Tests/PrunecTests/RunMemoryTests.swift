import Foundation
import PruneIR
import PruneRuntime
import Testing

/// `prunec run` holds the weights once (borrowed from the mapped model file, not copied), the
/// memory plan's arena, and a constant: peak RSS ≤ weights + arena + 64 MiB.
@Suite struct RunMemoryTests {
    @Test func peakMemoryIsWeightsPlusArenaPlusAConstant() throws {
        let dir = try CLI.temporaryDirectory("run-memory")
        defer { try? FileManager.default.removeItem(at: dir) }
        // 24 MatMuls with 1024×1024 float weights: 96 MiB in external data.
        let n = 1024
        let b = GraphBuilder()
        var v = b.input("x", .float, [1, n])
        for i in 0..<24 {
            var w = [Float](repeating: 0, count: n * n)
            for j in 0..<n { w[j * n + (j + i) % n] = 1 }  // a permutation: values stay exact
            let wv = b.initializer("w\(i)", Tensor(floats: w, shape: [n, n]))
            v = b.add(.matMul, [v, wv])
        }
        b.output(v)
        let model = b.model(opset: 17)
        let url = dir.appendingPathComponent("chain.onnx")
        try ModelExporter.write(model, to: url, options: ExportOptions(externalData: .all(threshold: 1024)))
        let x = (0..<n).map { Float($0) }
        try NPZ.write([(name: "x", array: NDArray(x, shape: [1, n]))], to: dir.appendingPathComponent("x.npz"))

        let r = try CLI.run(["run", "chain.onnx", "--inputs", "x.npz", "-o", "y.npz", "--threads", "1", "--report-peak-rss"], in: dir)
        try #require(r.status == 0, "\(r.stderr)")
        func figure(_ key: String) -> Int {
            r.stderr.split(separator: "\n").first { $0.hasPrefix(key + ": ") }.flatMap { Int($0.dropFirst(key.count + 2)) } ?? .max
        }
        let peak = figure("peak-rss-bytes"), weights = figure("weight-bytes"), arena = figure("arena-bytes")
        print("prunec run, 96 MiB of weights: peak RSS \(peak >> 20) MiB, weights \(weights >> 20) MiB, arena \(arena >> 10) KiB, intermediates \(figure("intermediate-bytes") >> 10) KiB")
        #expect(weights == 24 * n * n * 4)
        #expect(peak <= weights + arena + (64 << 20), "peak RSS \(peak) > weights \(weights) + arena \(arena) + 64 MiB")

        // Step i moves element j to (j + i) mod n: in all, a rotation by 0 + 1 + ... + 23 = 276.
        let y = try NPZ.read(contentsOf: dir.appendingPathComponent("y.npz"))
        try #require(y.count == 1 && y[0].name == "out.\(v.name)")
        let got = y[0].array.scalars(as: Float.self)
        #expect(got == (0..<n).map { Float((($0 - 276) % n + n) % n) })
    }
}
