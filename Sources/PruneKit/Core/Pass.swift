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
    /// Makes the pass with parsed options.
    init(options: Options) throws
    /// Transforms `model` in place.
    func run(on model: Model, context: PassContext) throws -> PassResult
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
    /// The reference model for passes that compare against the original or train toward it
    /// (`distill`'s teacher): the pipeline's input model as loaded, before any pass ran, or the
    /// model named by `--teacher` when the input is a model pruned earlier. `nil` when the
    /// driver provides none (passes that need it throw a clear error).
    public var original: Model?

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
    }
}
