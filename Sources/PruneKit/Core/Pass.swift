import Foundation
import Logging
import PruneIR
import PruneRuntime

/// A graph-to-graph transformation: a pruning method, a mask fold, a cleanup.
///
/// Passes are structs: all state lives in ``Options`` (parsed from pipeline text) or in locals of
/// ``run(on:context:)``. The ``name`` is the pipeline spelling (kebab-case).
public protocol Pass: Sendable {
    /// The pass's options, declared once (see ``PassOptions``).
    associatedtype Options: PassOptions
    /// The pipeline spelling, e.g. `magnitude` or `fold-masks`.
    static var name: String { get }
    /// One line for `prunec passes`.
    static var summary: String { get }
    /// What the pass needs from the session beyond the model (the driver provides it, or refuses
    /// the pipeline with a clear message before any pass runs). Default: nothing.
    static var requirements: PassRequirements { get }
    /// The options the pass was made with.
    var options: Options { get }
    /// Makes the pass with parsed options.
    init(options: Options) throws
    /// Transforms `model` in place.
    func run(on model: Model, context: PassContext) throws -> PassResult
}

extension Pass {
    /// Nothing beyond the model.
    public static var requirements: PassRequirements { [] }

    /// The pass as canonical pipeline text: its name, then the options that differ from their
    /// defaults (`magnitude{sparsity=0.5}`). Parsing it makes an equal pass.
    public var pipelineText: String {
        Pipeline.Element(name: Self.name, options: options.pipelineOptions.map { .init(key: $0.key, value: $0.value) }).description
    }
}

extension Pass where Options == NoOptions {
    /// A pass without options has none to report.
    public var options: NoOptions { NoOptions() }
}

/// What a pass needs from the session, declared by ``Pass/requirements``.
public struct PassRequirements: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// ``PassContext/original``: the model as loaded before any pass ran (or the `--teacher`
    /// model). The driver loads it only when a pass of the pipeline asks for it.
    public static let originalModel = PassRequirements(rawValue: 1 << 0)
    /// ``PassContext/calibration``: calibration inputs; without them the driver refuses the
    /// pipeline, naming the pass, before reading the model's weights into any pass.
    public static let calibration = PassRequirements(rawValue: 1 << 1)
}

/// One step of a long-running pass, for the progress line on stderr.
public struct PassProgress: Sendable {
    /// The pass reporting.
    public var pass: String
    /// Steps done (1-based).
    public var step: Int
    /// Steps in all.
    public var total: Int
    /// Seconds since the work started.
    public var elapsed: Double
    /// What the step measured (`loss 0.12, sparsity 20%`).
    public var detail: String

    /// A step.
    public init(pass: String, step: Int, total: Int, elapsed: Double, detail: String) {
        self.pass = pass
        self.step = step
        self.total = total
        self.elapsed = elapsed
        self.detail = detail
    }

    /// Seconds left, extrapolated from the time per step so far.
    public var eta: Double { step > 0 ? elapsed / Double(step) * Double(max(0, total - step)) : 0 }

    /// `ecodiff step 3/30: loss 0.1, 1.2 s, ETA 11 s`.
    public var line: String {
        "\(pass) step \(step)/\(total): \(detail), \(String(format: "%.1f", elapsed)) s, ETA \(String(format: "%.0f", eta)) s"
    }
}

/// What a pass reports: whether it changed the model, and named statistics.
public struct PassResult: Sendable, Equatable {
    /// Whether the model changed.
    public var changed: Bool
    /// Named counts for the log and the report (`heads-removed`, `groups`, ...).
    public var statistics: [String: Double]

    /// A result.
    public init(changed: Bool, statistics: [String: Double] = [:]) {
        self.changed = changed
        self.statistics = statistics
    }

    /// Nothing changed.
    public static let unchanged = PassResult(changed: false)
}

/// What a running pass may use.
public struct PassContext: @unchecked Sendable {
    /// Diagnostics go here (stderr in the CLI).
    public var logger: Logger
    /// Seed for anything random; a pipeline with the same seed gives the same model.
    public var seed: UInt64
    /// Threads for the interpreter and BLAS.
    public var threads: Int
    /// Calibration inputs keyed by input name (several sets when the data file has them).
    public var calibration: [[String: NDArray]]
    /// The calibration file, for passes that read more of it than the input sets (EcoDiff reads
    /// `uncond.<input>` arrays for classifier-free guidance).
    public var calibrationURL: URL?
    /// The input model's file, for passes that read files beside it (the `scheduler_config.json`
    /// of a diffusers pipeline); `nil` for a model built in memory.
    public var modelURL: URL?
    /// The reference model for passes that compare against the original or train toward it
    /// (`distill`'s teacher): the pipeline's input model as loaded, before any pass ran, or the
    /// model named by `--teacher` when the input is a model pruned earlier. `nil` when the
    /// driver provides none (passes that need it throw a clear error).
    public var original: Model?
    /// Scores kept across the runs of one sweep pipeline (``ScoreCache``); `nil` outside a sweep.
    public var scoreCache: ScoreCache?
    /// Where progress of long work goes (the driver's default logs ``PassProgress/line`` at info
    /// level, which the CLI shows on stderr).
    public var progress: @Sendable (PassProgress) -> Void

    /// An interpreter for `model` with the context's thread count (passes that score units by
    /// running the model use it on ``calibration``).
    ///
    /// - Throws: `RuntimeError` naming the nodes the interpreter cannot run.
    public func interpreter(for model: Model) throws -> Interpreter {
        try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
    }

    /// A context.
    public init(logger: Logger = Logger(label: "prunec"), seed: UInt64 = 0, threads: Int = 1, calibration: [[String: NDArray]] = [],
                calibrationURL: URL? = nil, original: Model? = nil) {
        self.logger = logger
        self.seed = seed
        self.threads = threads
        self.calibration = calibration
        self.calibrationURL = calibrationURL
        self.original = original
        progress = { [logger] p in logger.info("\(p.line)") }
    }
}
