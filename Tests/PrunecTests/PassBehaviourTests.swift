import Foundation
import PruneIR
import Testing

/// Every pass writes the same model for the same options and seed as it did when the fixture was
/// recorded (`Tests/Fixtures/pass-behaviour.json`, recorded before the library-first refactor of
/// the driver and the options). A model is summarized by its op histogram and, per initializer,
/// its shape, Σ|x| and Σx² (compared with a relative tolerance of 1e-5, so a BLAS kernel that
/// rounds differently does not fail the test while any other kept unit, width or weight does).
///
/// `PRUNEC_RECORD_BEHAVIOUR=1 swift test --filter PassBehaviourTests` rewrites the fixture.
@Suite("pass behaviour is unchanged", .serialized)
struct PassBehaviourTests {
    struct Case: CustomStringConvertible, Sendable {
        let id: String
        let model: String
        let pipeline: String
        let calib: Bool
        var description: String { id }
    }

    static let cases: [Case] = [
        Case(id: "magnitude-masks-bert", model: "bert", pipeline: "magnitude{sparsity=0.3}", calib: false),
        Case(id: "magnitude-params-l1-bert", model: "bert", pipeline: "magnitude{params=0.2,norm=l1},fold-masks", calib: false),
        Case(id: "magnitude-round-resnet", model: "resnet", pipeline: "magnitude{sparsity=0.4,round-to=2},fold-masks", calib: false),
        Case(id: "magnitude-blocks-llama", model: "llama", pipeline: "magnitude{kinds=blocks,sparsity=0.25},fold-masks", calib: false),
        Case(id: "fluctuation-reconstruct-bert", model: "bert", pipeline: "fluctuation{params=0.2},reconstruct,fold-masks", calib: true),
        Case(id: "fluctuation-masks-llama", model: "llama", pipeline: "fluctuation{sparsity=0.3,metric=energy}", calib: true),
        Case(id: "ld-pruner-heads-bert", model: "bert", pipeline: "ld-pruner{kinds=heads,sparsity=0.25,estimate=exact},fold-masks", calib: true),
        Case(id: "ecodiff-unet", model: "unet", pipeline: "ecodiff{steps=2,denoise-steps=2,samples=1,holdout=1},fold-masks", calib: true),
        Case(id: "ecodiff-output-bert", model: "bert", pipeline: "ecodiff{objective=output,steps=4,sparsity=0.3}", calib: true),
        Case(id: "autobot-resnet", model: "resnet", pipeline: "autobot{flops=0.5,steps=4,holdout=1},fold-masks", calib: true),
        Case(id: "depth-ppl-llama", model: "llama", pipeline: "depth{blocks=1,criterion=ppl},fold-masks", calib: true),
        Case(id: "depth-bk-sdm-unet", model: "unet", pipeline: "depth{preset=bk-sdm}", calib: true),
        Case(id: "depth-absorb-llama", model: "llama", pipeline: "depth{blocks=1,keep-masks=true},reconstruct,fold-masks", calib: true),
        Case(id: "distill-bert", model: "bert", pipeline: "magnitude{sparsity=0.4,kinds=heads+neurons},fold-masks,distill{steps=4,eval-every=2}", calib: true),
        Case(id: "cleanup-dit", model: "dit", pipeline: "fold-constants,dce,cleanup", calib: false),
    ]

    static let fixture = CLI.repoRoot.appendingPathComponent("Tests/Fixtures/pass-behaviour.json")
    static var recording: Bool { ProcessInfo.processInfo.environment["PRUNEC_RECORD_BEHAVIOUR"] == "1" }

    /// Op histogram and per-initializer (shape, Σ|x|, Σx²) of a written model.
    static func summary(_ url: URL) throws -> [String: [Double]] {
        let model = try ModelImporter.load(contentsOf: url)
        var out: [String: [Double]] = [:]
        for n in model.graph.allNodes { out["op:\(n.opType.name)", default: [0]][0] += 1 }
        for v in model.graph.initializers {
            guard let t = v.initializer else { continue }
            var row = [Double(t.shape.count)] + t.shape.map(Double.init)
            if t.dtype.isFloatingPoint {
                let xs = try t.floats()
                row.append(xs.reduce(0) { $0 + Double(abs($1)) })
                row.append(xs.reduce(0) { $0 + Double($1) * Double($1) })
            }
            out["init:\(v.name)"] = row
        }
        return out
    }

    @Test(arguments: cases)
    func sameModel(_ c: Case) throws {
        let dir = try CLI.temporaryDirectory("behaviour")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("\(c.id).onnx").path
        var args = ["examples/models/\(c.model).onnx", "--pass", c.pipeline, "-o", out, "--seed", "7", "--threads", "1", "--no-validate"]
        if c.calib { args += ["--calib", "examples/models/\(c.model).calib.npz"] }
        let r = try CLI.run(args)
        try #require(r.status == 0, "\(c.id): \(r.stderr)")
        let got = try Self.summary(URL(fileURLWithPath: out))
        if Self.recording {
            var all = (try? JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture))) as? [String: Any] ?? [:]
            all[c.id] = got
            try FileManager.default.createDirectory(at: Self.fixture.deletingLastPathComponent(), withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys, .prettyPrinted]).write(to: Self.fixture)
            return
        }
        let all = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as? [String: Any])
        let want = try #require(all[c.id] as? [String: [Double]], "no recorded summary for \(c.id)")
        #expect(Set(got.keys) == Set(want.keys), "\(c.id): initializers or ops differ: \(Set(got.keys).symmetricDifference(want.keys).sorted())")
        for (key, w) in want {
            guard let g = got[key] else { continue }
            let same = g.count == w.count && zip(g, w).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }
            #expect(same, "\(c.id): \(key) was \(w), now \(g)")
        }
    }
}
