import Foundation
import PruneIR
import Testing

@testable import PruneRuntime

/// `Tape.rerun(changing:fused:)` on full recordings and on recordings for reruns only
/// (`runRecording(_:forRerunsChanging:)`): the outputs of a whole run with the changed inputs,
/// from a tape that keeps only what the reruns read.
@Suite struct RerunTests {
    /// Two gated residual blocks, `h = x + g · relu(x·W + b)`, then a product: the shape of a
    /// depth search over a decoder.
    static func model() -> Model {
        let g = GraphBuilder(name: "gated")
        var h = g.input("x", .float, [4, 8])
        for i in 0..<2 {
            let gate = g.input("gate\(i)", .float, [1])
            let w = g.initializer("w\(i)", NDArray((0..<64).map { Float(($0 * (i + 3)) % 11) * 0.05 - 0.25 }, shape: [8, 8]).tensor())
            let b = g.initializer("b\(i)", NDArray((0..<8).map { Float($0) * 0.01 }, shape: [8]).tensor())
            let branch = g.add(OpType("Relu"), [g.add(OpType("Add"), [g.add(OpType("MatMul"), [h, w]), b])])
            h = g.add(OpType("Add"), [h, g.add(OpType("Mul"), [branch, gate])])
        }
        let w = g.initializer("out", NDArray((0..<24).map { Float($0 % 5) * 0.1 }, shape: [8, 3]).tensor())
        g.output(g.add(OpType("MatMul"), [h, w]))
        return g.model(opset: 17)
    }

    @Test func partialRecordingsRerunLikeWholeRuns() throws {
        let interp = try Interpreter(model: Self.model(), options: .init(threads: 1, profile: false))
        let one = NDArray([Float(1)], shape: [1]), zero = NDArray([Float(0)], shape: [1])
        let feeds = ["x": NDArray((0..<32).map { Float($0 % 7) * 0.3 - 0.9 }, shape: [4, 8]), "gate0": one, "gate1": one]
        let full = try interp.runRecording(feeds)
        let partial = try interp.runRecording(feeds, forRerunsChanging: ["gate0", "gate1"])
        let kept = partial.entries.reduce(0) { $0 + $1.outputs.compactMap { $0 }.count }
        let all = full.entries.reduce(0) { $0 + $1.outputs.compactMap { $0 }.count }
        // Each block's stream and branch product, not every step's output.
        #expect(kept <= 4 && kept < all, "kept \(kept) of \(all)")
        for changed in [["gate0": zero], ["gate1": zero], ["gate0": zero, "gate1": zero]] {
            let want = try interp.run(feeds.merging(changed) { $1 })
            for tape in [full, partial] {
                let got = try tape.rerun(changing: changed, fused: true)
                for (k, v) in want {
                    let diff = zip(got[k]!.doubles(), v.doubles()).map { abs($0 - $1) }.max() ?? 1
                    #expect(diff < 1e-6, "\(changed.keys.sorted()): \(diff)")
                }
            }
        }
        #expect(throws: RuntimeError.self) { _ = try partial.backward(seeds: [:], wrt: ["x"]) }
        #expect(throws: RuntimeError.self) { _ = try interp.runRecording(feeds, forRerunsChanging: ["nope"]) }
    }
}
