import BuiltinPasses
import Foundation
import PruneIR
import PruneTestSupport
import Testing

@testable import PruneKit

/// The drivers in process: `Compiler` (what `prunec MODEL --pass ...` runs), `CheckReport.measure`
/// (`prunec check`) and `ModelDiff.compare` (`prunec diff`), on the example encoder.
@Suite struct DriverTests {
    static let bert = TestPaths.examples.appendingPathComponent("bert.onnx").path
    static let calib = TestPaths.examples.appendingPathComponent("bert.calib.npz")

    func compile(_ pipeline: String, output: URL?, configure: (inout Compiler.Options) -> Void = { _ in }) throws -> Compiler.Result {
        var o = Compiler.Options(pipeline: pipeline)
        o.calibration = Self.calib
        o.output = output
        o.latencyRuns = 1
        configure(&o)
        return try Compiler(registry: BuiltinPasses.registry, options: o).compile(modelAt: Self.bert)
    }

    @Test func compileRunsValidatesAndWrites() throws {
        let dir = try TestPaths.temporaryDirectory("driver")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("small.onnx")
        let r = try compile("magnitude{sparsity=0.3},fold-masks", output: out) { $0.compare = ["magnitude{sparsity=0.5},fold-masks"] }
        let report = r.report
        #expect(report.written && report.passed && FileManager.default.fileExists(atPath: out.path))
        #expect(report.pipeline == "magnitude{sparsity=0.3},fold-masks", "the pipeline as written: \(report.pipeline)")
        #expect(report.after.params < report.before.params)
        #expect(report.passes.map(\.pass) == ["magnitude{sparsity=0.3}", "fold-masks"])
        #expect(report.inputs?.source == "calibration" && (report.inputs?.sets ?? 0) > 0)
        let drift = try #require(report.worstDrift)
        #expect(drift > 0 && drift < 1, "rel L2 \(drift)")
        // The written model is the one in the result, and it reads back with the same parameter count.
        #expect(CostModel.parameterCount(try ModelFile.load(out.path)) == report.after.params)
        // The baseline removes more, so it drifts more and is smaller.
        let baseline = try #require(report.compare.first)
        #expect(baseline.pipeline == "magnitude{sparsity=0.5},fold-masks")
        #expect(baseline.params < report.after.params && (baseline.worstDrift ?? 0) > drift)
        let json = try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any]
        #expect((json?["compare"] as? [[String: Any]])?.count == 1)
    }

    @Test func maxDriftRefusesToWrite() throws {
        let dir = try TestPaths.temporaryDirectory("driver-drift")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("small.onnx")
        let r = try compile("magnitude{sparsity=0.6},fold-masks", output: out) { $0.maxDrift = 1e-6 }
        #expect(!r.report.passed && !r.report.written && r.report.output == nil)
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func passesGetTheOriginalWhenTheyDeclareIt() throws {
        struct NeedsOriginal: Pass {
            static let name = "needs-original"
            static let summary = "records whether the original came"
            static let requirements: PassRequirements = [.originalModel]
            init(options: NoOptions) {}
            func run(on model: Model, context: PassContext) throws -> PassResult {
                guard let original = context.original else { throw PruningError.invalid("no original") }
                // A copy, not the model being changed.
                return PassResult(changed: false, statistics: ["same-object": original === model ? 1 : 0,
                                                               "params": Double(CostModel.parameterCount(original))])
            }
        }
        var registry = BuiltinPasses.registry
        registry.register(NeedsOriginal.self)
        var o = Compiler.Options(pipeline: "magnitude{sparsity=0.5},fold-masks,needs-original")
        o.validate = false
        let compiler = try Compiler(registry: registry, options: o)
        #expect(compiler.requirements.contains(.originalModel))
        let r = try compiler.compile(modelAt: Self.bert)
        let stats = try #require(r.report.passes.last?.statistics)
        #expect(stats["same-object"] == 0 && stats["params"] == Double(r.report.before.params))
    }

    @Test func aBadPipelineFailsBeforeAnyModelIsRead() {
        #expect(throws: PipelineError.self) {
            _ = try Compiler(registry: BuiltinPasses.registry, options: .init(pipeline: "magnitude{sparsity=2}"))
        }
    }

    @Test func checkMeasuresAndAppliesThresholds() throws {
        let dir = try TestPaths.temporaryDirectory("driver-check")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("small.onnx")
        let compiled = try compile("magnitude{sparsity=0.3},fold-masks", output: out) { $0.validate = false }
        let thresholds = CheckThresholds(minParamReduction: 0.05, maxDrift: 1e-9)
        let report = try CheckReport.measure(model: out.path, baseline: Self.bert, inputs: Self.calib.path, shapes: [:], threads: 1,
                                             thresholds: thresholds)
        #expect(report.params.model == compiled.report.after.params && report.params.baseline == compiled.report.before.params)
        #expect(report.checks.map(\.name) == ["min-param-reduction", "max-drift"])
        #expect(report.checks[0].passed && !report.checks[1].passed && !report.passed)
        #expect((report.params.reduction ?? 0) > 0.05)
        #expect(throws: SampleInputsError.self) {
            _ = try CheckReport.measure(model: out.path, baseline: Self.bert, inputs: nil, shapes: ["nope": Shape([1])], threads: 1,
                                        thresholds: CheckThresholds())
        }
    }

    @Test func diffMatchesLayersAcrossModels() throws {
        let dir = try TestPaths.temporaryDirectory("driver-diff")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("small.onnx")
        _ = try compile("magnitude{sparsity=0.5,kinds=neurons},fold-masks", output: out) { $0.validate = false }
        let diff = try ModelDiff.compare(Self.bert, out.path)
        let changed = diff.layers.filter { $0.status == "changed" }
        #expect(!changed.isEmpty && diff.layers.allSatisfy { $0.status == "changed" || $0.status == "unchanged" })
        #expect(changed.allSatisfy { ($0.paramsReduction ?? 0) > 0 })
        let params = CostModel.parameterCount(try ModelFile.load(Self.bert))
        #expect((diff.totals.params.reduction ?? 0) > 0 && diff.totals.params.a == params)
    }
}
