import ArgumentParser
import Foundation
import Logging
import PruneIR
import PruneKit
import PruneRuntime

extension Prunec {
    /// `prunec MODEL --pass P ... -o OUT`: import, run the pipeline, validate, export.
    struct Compile: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prune a model: run a pass pipeline, validate the result against the original, write it (the default command).",
            discussion: """
                Passes run in the order given; each --pass may hold one pass or a whole pipeline \
                (magnitude{sparsity=0.3},fold-masks). `prunec passes --options` lists them.

                After the pipeline, prunec runs the original and the result on the calibration data \
                (--calib, every sample set in it) or on deterministic sample inputs, and reports the \
                drift per output (max abs, relative L2, cosine), parameters, MACs and interpreter \
                latency before and after. With --max-drift, a result whose relative L2 drift on any \
                output exceeds the limit is not written (exit 1).

                Passes that train toward the original (distill) use the input model, as loaded before \
                any pass ran, as the teacher; when the input is a model pruned earlier, --teacher \
                names the original, and the validation then compares the result with the teacher \
                (its inputs and outputs must be the input model's).

                With no pass this is a round trip: an unchanged model is written back byte-identical \
                where its writer was a conforming protobuf serializer.

                Example:
                  prunec model.onnx --pass 'magnitude{sparsity=0.3}' --pass fold-masks -o small.onnx --report report.json
                """)

        @OptionGroup var input: ModelInputOptions
        @OptionGroup var outputOptions: ModelOutputOptions
        @OptionGroup var pluginOptions: PluginOptions

        @Option(name: .customLong("pass"), help: ArgumentHelp("A pass or pipeline to run (repeatable), e.g. 'magnitude{sparsity=0.3}'.", valueName: "pipeline"))
        var passes: [String] = []

        @Option(name: .customLong("calib"), help: ArgumentHelp("Calibration data (.npz keyed by input name, with optional set1., set2. ... samples, or a test_data_set folder) for the passes and the validation.", valueName: "data"))
        var calib: String?

        @Option(name: .customLong("teacher"), help: ArgumentHelp("The original model, when MODEL was pruned earlier: the teacher of distill and the reference of the validation (default: MODEL as loaded).", valueName: "original.onnx"))
        var teacher: String?

        @Option(name: .customLong("report"), help: ArgumentHelp("Write the report (before/after, drift, passes) as JSON here.", valueName: "file.json"))
        var report: String?

        @Option(name: .customLong("max-drift"), help: ArgumentHelp("Refuse to write the result when any output's relative L2 drift exceeds this (e.g. 0.05).", valueName: "x"))
        var maxDrift: Double?

        @Option(help: ArgumentHelp("Seed for passes and sample inputs.", valueName: "n"))
        var seed: UInt64 = 0

        @OptionGroup var threadOptions: ThreadOptions

        @Option(name: .customLong("shape"), help: ArgumentHelp("Shape of a synthesized sample input when there is no --calib (repeatable).", valueName: "name=1x16"))
        var shapes: [String] = []

        @Flag(name: .customLong("verify-each"), help: "Verify the IR after every pass (always on in debug builds).")
        var verifyEach = false

        @Option(name: .customLong("print-ir-after"), help: ArgumentHelp("Print the IR to stderr after the named pass (repeatable).", valueName: "pass"))
        var printIRAfter: [String] = []

        @Flag(name: .customLong("no-validate"), help: "Skip running the original and the result (no drift, no latency).")
        var noValidate = false

        @Option(help: ArgumentHelp("Timed interpreter runs per model for the latency figures.", valueName: "n"))
        var runs: Int = 5

        @Flag(name: [.customShort("v"), .long], help: "Log every pass's details.")
        var verbose = false

        func validate() throws {
            guard outputOptions.output != nil || !passes.isEmpty && report != nil else {
                throw ValidationError("missing -o/--output: where should the compiled model go?")
            }
            if let maxDrift, !(maxDrift >= 0) { throw ValidationError("--max-drift must be 0 or more, got \(maxDrift)") }
            if runs < 1 { throw ValidationError("--runs must be at least 1, got \(runs)") }
            if maxDrift != nil && noValidate { throw ValidationError("--max-drift needs the validation that --no-validate skips") }
            _ = try InputShapes.parse(shapes)
            _ = try pipeline()
        }

        /// Every --pass joined into one pipeline; a syntax error points at its column.
        func pipeline() throws -> Pipeline {
            var p = Pipeline([])
            for text in passes {
                do {
                    p = p + (try Pipeline.parse(text))
                } catch let e as PipelineError {
                    throw ValidationError("--pass: \(e)")
                }
            }
            return p
        }

        /// Runs original and result on the calibration sets (or a sample), fills in drift, MACs at
        /// those shapes, and latency.
        func validate(reference: Model, candidate: Model, calibration: [[String: NDArray]], into report: inout CompileReport) throws {
            let sets = try calibration.isEmpty
                ? [SampleInputs.make(for: reference, shapes: InputShapes.parse(shapes), seed: seed)] : calibration
            let threads = threadOptions.threads
            let drift = try Validation.drift(reference: reference, candidate: candidate, inputs: sets, threads: threads)
            report.driftOrder = drift
            report.drift = Dictionary(drift.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            report.inputs = .init(source: calibration.isEmpty ? "sample" : "calibration", sets: sets.count)
            // MACs at the validation shapes, counted on copies so the written model keeps its symbolic dims.
            let bound = sets[0].mapValues { Shape($0.shape) }
            for (model, isBefore) in [(reference, true), (candidate, false)] {
                let copy = try ModelImporter.load(proto: ModelExporter.proto(model), file: input.model, baseDirectory: nil)
                ShapeInference(overrides: bound).run(on: copy)
                let macs = CostModel().totalMACs(copy)
                let ms = try Validation.latency(model: model, inputs: sets[0], runs: runs, warmup: 1, threads: threads)
                if isBefore {
                    report.before.macs = macs ?? report.before.macs
                    report.before.latencyMs = ms
                } else {
                    report.after.macs = macs ?? report.after.macs
                    report.after.latencyMs = ms
                }
            }
            if let maxDrift, let worst = report.worstDrift, !(worst <= maxDrift) { report.passed = false }
        }

        func run() throws {
            try reportingErrors {
                // Plugins load and the pipeline is checked against every pass before any model is read.
                let registry = try pluginOptions.registry()
                let pipeline = try pipeline()
                let manager: PassManager
                do {
                    manager = try PassManager(pipeline: pipeline, registry: registry, text: passes.joined(separator: ","))
                } catch let e as PipelineError {
                    throw ValidationError("--pass: \(e)")
                }
                let model = try input.load()
                // Types for every value, so MACs are counted and passes see shapes (not for a plain
                // round trip, which must write back what it read).
                if !passes.isEmpty { ShapeInference().run(on: model) }
                if verifyEach { manager.verifyEach = true }
                if !printIRAfter.isEmpty {
                    manager.instrumentations.append(PrintIRAfter(Set(printIRAfter)) { FileHandle.standardError.write(Data($0.utf8)) })
                }
                let logger = StderrLog.logger(verbose: verbose)
                let calibration = try calib.map { try CalibrationData.load(URL(fileURLWithPath: $0), for: model) } ?? []
                // The teacher of passes that train toward the original: --teacher, or the input
                // model loaded apart (only when such a pass runs: a second copy costs memory).
                let teacherModel: Model? = try teacher.map { path in
                    let t = try ModelInputOptions.load(path)
                    ShapeInference().run(on: t)
                    return t
                } ?? (pipeline.elements.contains { $0.name == "distill" } ? {
                    let t = try input.load()
                    ShapeInference().run(on: t)
                    return t
                }() : nil)
                let context = PassContext(logger: logger, seed: seed, threads: threadOptions.threads, calibration: calibration,
                                          calibrationURL: calib.map { URL(fileURLWithPath: $0) }, original: teacherModel)
                // The original, loaded apart, is the reference for drift and the "before" column
                // (the teacher when --teacher names one). A plain round trip (no pass, no gate, no
                // report) is not validated.
                let validating = !noValidate && (!passes.isEmpty || maxDrift != nil || report != nil)
                let reference = validating ? try teacher.map { try ModelInputOptions.load($0) } ?? input.load() : nil
                let before = ModelStats(model)
                let records: [PassRecord]
                do {
                    records = try manager.run(on: model, context: context)
                } catch let f as PassFailure {
                    Diagnostics.error("\(input.model): \(f)")
                    throw ExitCode(PrunecExit.badInput)
                }
                var result = CompileReport(
                    model: input.model, output: outputOptions.output, pipeline: manager.passes.map(\.text).joined(separator: ","),
                    before: .init(params: before.params, macs: before.macs, nodes: before.nodes),
                    after: .init(params: CostModel.parameterCount(model), macs: CostModel().totalMACs(model), nodes: model.graph.allNodes.count),
                    drift: [:], passes: records, maxDrift: maxDrift, passed: true, written: false)
                if let reference {
                    try validate(reference: reference, candidate: model, calibration: calibration, into: &result)
                }
                if let output = outputOptions.output, result.passed {
                    try ModelExporter.write(model, to: URL(fileURLWithPath: output), options: outputOptions.exportOptions)
                    result.written = true
                }
                if !result.passed { result.output = nil }
                if let path = report {
                    try ReportFile.write(try result.json(), to: path)
                }
                if !passes.isEmpty || reference != nil { print(result.text(), terminator: "") }
                if !result.passed {
                    Diagnostics.error("drift \(result.worstDrift ?? .nan) exceeds --max-drift \(maxDrift ?? 0); \(outputOptions.output ?? "the result") was not written")
                    throw ExitCode(1)
                }
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}
