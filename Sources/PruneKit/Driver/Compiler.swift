import Foundation
import Logging
import PruneIR
import PruneRuntime

/// The compile driver: what `prunec MODEL --pass P -o OUT` does, callable from Swift.
///
/// 1. The pipeline is resolved against the registry when the compiler is made (unknown passes
///    and bad options fail before any model is read).
/// 2. ``compile(modelAt:)`` loads the model, infers shapes, reads the calibration data, gives the
///    passes what they declared in ``Pass/requirements`` (the original model), and runs the
///    pipeline through a ``PassManager``.
/// 3. Validation runs the original (or the teacher) and the result on the calibration sets (or
///    synthesized inputs) and reports drift, MACs and latency; each `compare` pipeline is run on
///    the original too and reported beside the result.
/// 4. The result is written atomically to ``Options/output`` unless its drift exceeds
///    ``Options/maxDrift``.
///
/// ```swift
/// var options = Compiler.Options(pipeline: "magnitude{sparsity=0.3},fold-masks")
/// options.output = URL(fileURLWithPath: "small.onnx")
/// let result = try Compiler(registry: registry, options: options).compile(modelAt: "model.onnx")
/// print(result.report.text())
/// ```
public struct Compiler {
    /// What to run and how.
    public struct Options {
        /// The pipeline text (several `--pass` flags joined by `,`); empty for a round trip.
        public var pipeline: String
        /// Calibration data (.npz, .npy or a test_data_set folder) for the passes and the validation.
        public var calibration: URL?
        /// The original model when the input was pruned earlier: the teacher of passes that need
        /// the original and the reference of the validation.
        public var teacher: URL?
        /// Seed of passes and synthesized inputs.
        public var seed: UInt64 = 0
        /// Interpreter and BLAS threads.
        public var threads: Int = 1
        /// Shapes of synthesized inputs when there is no calibration data.
        public var sampleShapes: [String: Shape] = [:]
        /// Run the original and the result (drift, latency); `false` skips it.
        public var validate = true
        /// Timed interpreter runs per model for the latency figures.
        public var latencyRuns = 5
        /// Sampling runs compared when the model is a denoiser (``SamplingDrift``); 0 skips them.
        public var samplingRuns = 2
        /// Sampler steps of each of those runs.
        public var samplingSteps = 8
        /// Refuse to write a result whose worst relative L2 drift exceeds this.
        public var maxDrift: Double?
        /// Baseline pipelines run on the original and reported beside the result.
        public var compare: [String] = []
        /// Verify the IR after every pass (`nil`: the pass manager's default, on in debug builds).
        public var verifyEach: Bool?
        /// Hooks around every pass (`--print-ir-after`, timing).
        public var instrumentations: [PassInstrumentation] = []
        /// Where pass logs and progress go.
        public var logger = Logger(label: "prunec")
        /// Where to write the result; `nil` writes nothing.
        public var output: URL?
        /// How the result is written (external data).
        public var exportOptions = ExportOptions()
        /// Also validate a plain round trip (no pass) when a report is wanted.
        public var validateRoundTrip = false
        /// Unit scores shared with other runs of this pipeline on this model (a sweep).
        public var scoreCache: ScoreCache?

        /// Options for `pipeline`, everything else at its default.
        public init(pipeline: String) { self.pipeline = pipeline }
    }

    /// What a compilation produced.
    public struct Result {
        /// The pruned model (written to ``Options/output`` when ``CompileReport/written``).
        public var model: Model
        /// The measurements: before/after, drift, passes, comparisons.
        public var report: CompileReport
    }

    /// The options.
    public let options: Options
    /// The resolved pipeline.
    public let manager: PassManager
    private let baselines: [PassManager]

    /// Resolves `options.pipeline` (and every `compare` pipeline) against `registry`.
    ///
    /// - Throws: ``PipelineError`` at the column of a syntax error, an unknown pass or a bad option.
    public init(registry: PassRegistry, options: Options) throws {
        self.options = options
        manager = try Self.manager(options.pipeline, registry: registry, options: options)
        baselines = try options.compare.map { try Self.manager($0, registry: registry, options: options) }
    }

    private static func manager(_ text: String, registry: PassRegistry, options: Options) throws -> PassManager {
        let pipeline = text.isEmpty ? Pipeline([]) : try Pipeline.parse(text)
        let m = try PassManager(pipeline: pipeline, registry: registry, text: text)
        if let v = options.verifyEach { m.verifyEach = v }
        m.instrumentations = options.instrumentations
        return m
    }

    /// What the passes of the pipeline need together.
    public var requirements: PassRequirements {
        (manager.passes + baselines.flatMap(\.passes)).reduce([]) { $0.union(type(of: $1.pass).requirements) }
    }

    /// Loads the model at `path` and compiles it (see ``compile(_:file:)``).
    ///
    /// - Throws: import errors naming `path`, calibration data errors, ``PassFailure`` naming the
    ///   failing pass, export errors.
    public func compile(modelAt path: String) throws -> Result {
        try compile(ModelFile.load(path), file: path)
    }

    /// Compiles `model` (read from `file`, which names it in errors and reports): runs the
    /// pipeline, validates the result against the original, and writes it when it passes.
    /// `model` is changed in place and returned in the result.
    public func compile(_ model: Model, file: String) throws -> Result {
        try ModelFile.checkInputNames(options.sampleShapes.keys, in: model, file: file)
        let running = !manager.passes.isEmpty
        // Types for every value, so MACs are counted and passes see shapes (not for a plain round
        // trip, which must write back what it read).
        if running { ShapeInference().run(on: model) }
        let calibration = try options.calibration.map { try CalibrationData.load($0, for: model) } ?? []
        // NaN or inf in the data is legal input but makes every statistic and drift NaN: say so.
        for (i, set) in calibration.enumerated() {
            for (name, a) in set.sorted(by: { $0.key < $1.key }) where a.dtype.isFloatingPoint {
                if let k = (0..<a.count).first(where: { !a.element(at: $0).isFinite }) {
                    options.logger.warning("calibration sample \(i) input '\(name)' has a non-finite value (\(a.element(at: k)) at element \(k)): scores and drift computed on it will be NaN")
                    break
                }
            }
        }
        let teacher = try options.teacher.map { url -> Model in
            let t = try ModelFile.load(url.path)
            ShapeInference().run(on: t)
            return t
        }
        let validating = options.validate && (running || options.maxDrift != nil || options.validateRoundTrip || !baselines.isEmpty)
        // The original as loaded, before any pass: the reference of the validation (unless a
        // teacher is named), what `compare` pipelines start from, and what passes that train
        // toward the original get (only copied when something needs it).
        let needsOriginal = requirements.contains(.originalModel) && teacher == nil
        let original = validating || needsOriginal || !baselines.isEmpty ? model.copy() : nil
        if requirements.contains(.calibration) && calibration.isEmpty {
            let names = (manager.passes + baselines.flatMap(\.passes)).filter { type(of: $0.pass).requirements.contains(.calibration) }
            throw PruningError.invalid("\(names.map(\.text).joined(separator: ", ")) needs calibration data: pass --calib DATA")
        }
        var context = PassContext(logger: options.logger, seed: options.seed, threads: options.threads, calibration: calibration,
                                  calibrationURL: options.calibration, original: teacher ?? (needsOriginal ? original : nil))
        context.progress = { [logger = options.logger] p in logger.info("\(p.line)") }
        context.scoreCache = options.scoreCache
        context.modelURL = FileManager.default.fileExists(atPath: file) ? URL(fileURLWithPath: file) : nil

        let before = ModelStats(model)
        let records = try manager.run(on: model, context: context)
        var report = CompileReport(
            model: file, output: options.output?.path, pipeline: manager.passes.map(\.text).joined(separator: ","),
            before: .init(params: before.params, macs: before.macs, nodes: before.nodes),
            after: .init(params: CostModel.parameterCount(model), macs: CostModel().totalMACs(model), nodes: model.graph.allNodes.count),
            drift: [:], passes: records, maxDrift: options.maxDrift, passed: true, written: false)
        if validating, let reference = teacher ?? original {
            let sets = calibration.isEmpty ? [try SampleInputs.make(for: reference, shapes: options.sampleShapes, seed: options.seed)] : calibration
            try validate(reference: reference, candidate: model, sets: sets, source: calibration.isEmpty ? "sample" : "calibration", into: &report)
            let sampling = samplingSetup(reference: reference, sets: sets, modelURL: context.modelURL)
            let referenceFinals = try sampling.map { try $0.finals(reference, threads: options.threads) }
            if let sampling, let referenceFinals {
                let drift = SamplingDrift.drift(referenceFinals, try sampling.finals(model, threads: options.threads))
                report.sampling = .init(process: sampling.summary, runs: sampling.samples.count, steps: sampling.steps.count, relL2: drift)
            }
            for baseline in baselines {
                let b = (original ?? reference).copy()
                try baseline.run(on: b, context: context)
                let drift = try Validation.drift(reference: reference, candidate: b, inputs: sets, threads: options.threads)
                var entry = CompileReport.Comparison(
                    pipeline: baseline.passes.map(\.text).joined(separator: ","), params: CostModel.parameterCount(b),
                    macs: Validation.macs(model: b, at: sets[0]), drift: Dictionary(drift.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }))
                if let sampling, let referenceFinals {
                    entry.samplingRelL2 = SamplingDrift.drift(referenceFinals, try sampling.finals(b, threads: options.threads))
                }
                report.compare.append(entry)
            }
        }
        if let maxDrift = options.maxDrift, let worst = report.worstDrift, !(worst <= maxDrift) { report.passed = false }
        if let output = options.output, report.passed {
            try ModelExporter.write(model, to: output, options: options.exportOptions)
            report.written = true
        }
        if !report.passed { report.output = nil }
        return Result(model: model, report: report)
    }

    /// The final-sample comparison for a denoiser, with the diffusion options of the first pass
    /// that has them; `nil` (logged at debug level) for a model that is not a denoiser.
    private func samplingSetup(reference: Model, sets: [[String: NDArray]], modelURL: URL?) -> SamplingDrift? {
        guard options.samplingRuns > 0 else { return nil }
        let diffusion = (manager.passes + baselines.flatMap(\.passes)).lazy.compactMap { p -> DiffusionOptions? in
            guard let o = Mirror(reflecting: p.pass).children.first(where: { $0.label == "options" })?.value else { return nil }
            return Mirror(reflecting: o).children.lazy.compactMap { $0.value as? DiffusionOptions }.first
        }.first ?? DiffusionOptions()
        do {
            return try SamplingDrift.setup(reference: reference, sets: sets, diffusion: diffusion, modelURL: modelURL,
                                           runs: options.samplingRuns, steps: options.samplingSteps, seed: options.seed)
        } catch {
            options.logger.debug("no final-sample validation: \(error)")
            return nil
        }
    }

    /// Drift per output, MACs at the validation shapes, and interpreter latency of both models.
    private func validate(reference: Model, candidate: Model, sets: [[String: NDArray]], source: String, into report: inout CompileReport) throws {
        // Progress once a set takes long enough to wait for (a 1B model's pair of runs).
        let started = Date()
        let drift = try Validation.drift(reference: reference, candidate: candidate, inputs: sets, threads: options.threads) { done, all in
            let elapsed = Date().timeIntervalSince(started)
            guard elapsed > 2 else { return }
            options.logger.info("\(PassProgress(pass: "validation", step: done, total: all, elapsed: elapsed, detail: "original and result on \(source) set \(done)").line)")
        }
        report.driftOrder = drift
        report.drift = Dictionary(drift.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        report.inputs = .init(source: source, sets: sets.count)
        for (model, isBefore) in [(reference, true), (candidate, false)] {
            let macs = Validation.macs(model: model, at: sets[0])
            let ms = try Validation.latency(model: model, inputs: sets[0], runs: options.latencyRuns, warmup: 1, threads: options.threads)
            if isBefore {
                report.before.macs = macs ?? report.before.macs
                report.before.latencyMs = ms
            } else {
                report.after.macs = macs ?? report.after.macs
                report.after.latencyMs = ms
            }
        }
    }
}
