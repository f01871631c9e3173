import Foundation

/// What `prunec sweep` measured: every pipeline at every amount, the original's figures, and the
/// sensitivity of each pruning group. Written as `report.json`, `report.csv` and `report.html`
/// (see ``SweepHTML``).
public struct SweepReport: Codable, Sendable {
    /// The unpruned model's figures, the reference of every run.
    public struct Baseline: Codable, Sendable {
        /// Parameters.
        public var params: Int
        /// MACs at the validation shapes, where known.
        public var macs: Int?
        /// Interpreter median latency.
        public var latencyMs: Double
        /// onnxruntime median latency, when `--ort` names a Python with onnxruntime.
        public var ortLatencyMs: Double?
        /// Perplexity on the calibration token ids, for a causal LM.
        public var perplexity: Double?

        /// The figures.
        public init(params: Int, macs: Int?, latencyMs: Double, ortLatencyMs: Double? = nil, perplexity: Double? = nil) {
            self.params = params
            self.macs = macs
            self.latencyMs = latencyMs
            self.ortLatencyMs = ortLatencyMs
            self.perplexity = perplexity
        }
    }

    /// The width of one MAC-bearing layer before and after a run (what was kept where).
    public struct LayerWidth: Codable, Sendable, Equatable {
        /// The layer (node name).
        public var layer: String
        /// Output features (rows of the weight) in the original.
        public var before: Int
        /// Output features after pruning (0 when the layer was removed).
        public var after: Int

        /// A layer's widths.
        public init(layer: String, before: Int, after: Int) {
            self.layer = layer
            self.before = before
            self.after = after
        }
    }

    /// One pipeline at one amount.
    public struct Run: Codable, Sendable {
        /// The pipeline as given, with the `$x` placeholder.
        public var template: String
        /// The pipeline that ran (`$x` replaced by the amount).
        public var pipeline: String
        /// The amount substituted for `$x`.
        public var amount: Double
        /// The command line that reproduces this run.
        public var command: String
        /// The written model, relative to the sweep folder.
        public var output: String
        /// Parameters after the run.
        public var params: Int
        /// MACs after the run, where known.
        public var macs: Int?
        /// Fraction of the original's parameters removed.
        public var paramsRemoved: Double
        /// Fraction of the original's MACs removed, where known.
        public var macsRemoved: Double?
        /// Mean cosine similarity to the original over outputs and calibration sets.
        public var cosine: Double
        /// Worst relative L2 drift over the outputs.
        public var relL2: Double
        /// Share of samples whose top-1 class is the original's (classifier outputs only).
        public var top1: Double?
        /// Perplexity on the calibration token ids (causal LMs only).
        public var perplexity: Double?
        /// Interpreter median latency.
        public var latencyMs: Double
        /// onnxruntime median latency, when measured.
        public var ortLatencyMs: Double?
        /// Seconds the pipeline took.
        public var seconds: Double
        /// Per-layer widths after the run.
        public var widths: [LayerWidth]

        /// A run's figures.
        public init(template: String, pipeline: String, amount: Double, command: String, output: String, params: Int, macs: Int?,
                    paramsRemoved: Double, macsRemoved: Double?, cosine: Double, relL2: Double, top1: Double?, perplexity: Double?,
                    latencyMs: Double, ortLatencyMs: Double?, seconds: Double, widths: [LayerWidth]) {
            self.template = template
            self.pipeline = pipeline
            self.amount = amount
            self.command = command
            self.output = output
            self.params = params
            self.macs = macs
            self.paramsRemoved = paramsRemoved
            self.macsRemoved = macsRemoved
            self.cosine = cosine
            self.relL2 = relL2
            self.top1 = top1
            self.perplexity = perplexity
            self.latencyMs = latencyMs
            self.ortLatencyMs = ortLatencyMs
            self.seconds = seconds
            self.widths = widths
        }
    }

    /// The drift when one group alone loses `amount` of its units (lowest weight norm first).
    public struct Sensitivity: Codable, Sendable {
        /// The group's name.
        public var group: String
        /// Its kind (`heads`, `neurons`, `channels`).
        public var kind: String
        /// The fraction of its units removed.
        public var amount: Double
        /// Worst relative L2 drift over the outputs.
        public var relL2: Double
        /// Mean cosine to the original.
        public var cosine: Double

        /// A group's sensitivity.
        public init(group: String, kind: String, amount: Double, relL2: Double, cosine: Double) {
            self.group = group
            self.kind = kind
            self.amount = amount
            self.relL2 = relL2
            self.cosine = cosine
        }
    }

    /// A pipeline at an amount it cannot reach (the model's prunable groups allow less).
    public struct Skipped: Codable, Sendable {
        /// The pipeline that was refused.
        public var pipeline: String
        /// The amount.
        public var amount: Double
        /// The pass's message.
        public var reason: String

        /// A skipped run.
        public init(pipeline: String, amount: Double, reason: String) {
            self.pipeline = pipeline
            self.amount = amount
            self.reason = reason
        }
    }

    /// The model file.
    public var model: String
    /// The calibration file the runs were measured on.
    public var calibration: String?
    /// The pipeline templates, in the order given.
    public var templates: [String]
    /// The amounts, ascending.
    public var amounts: [Double]
    /// The original's figures.
    public var baseline: Baseline
    /// Every run, pipeline by pipeline, amounts ascending.
    public var runs: [Run]
    /// Per-group sensitivity at ``sensitivityAmount``, most sensitive first.
    public var sensitivity: [Sensitivity]
    /// The amount each group loses in the sensitivity analysis.
    public var sensitivityAmount: Double
    /// Runs whose target the model cannot reach (`nil` or empty when every run ran).
    public var skipped: [Skipped]?

    /// A report.
    public init(model: String, calibration: String?, templates: [String], amounts: [Double], baseline: Baseline, runs: [Run],
                sensitivity: [Sensitivity], sensitivityAmount: Double) {
        self.model = model
        self.calibration = calibration
        self.templates = templates
        self.amounts = amounts
        self.baseline = baseline
        self.runs = runs
        self.sensitivity = sensitivity
        self.sensitivityAmount = sensitivityAmount
    }

    /// The runs of one pipeline template, amounts ascending.
    public func runs(of template: String) -> [Run] { runs.filter { $0.template == template }.sorted { $0.amount < $1.amount } }

    /// The largest fraction of parameters a template removes while keeping `cosine ≥ minCosine`
    /// (0 when no run does): what `prunec check --sweep` gates on.
    public func largestRemoval(of template: String, minCosine: Double) -> Double {
        runs(of: template).filter { $0.cosine >= minCosine }.map(\.paramsRemoved).max() ?? 0
    }

    /// The sweep gate of `prunec check --sweep`: for each template (all, or `templates`), the
    /// largest fraction of parameters removed with mean cosine ≥ `minCosine` must be at least
    /// `minRemoved`.
    ///
    /// - Throws: ``SweepError/unknownTemplate(_:known:)`` for a template the sweep did not run.
    public func gate(minCosine: Double, minRemoved: Double, templates chosen: [String]? = nil) throws -> [CheckResult] {
        try (chosen ?? templates).map { t in
            guard templates.contains(t) else { throw SweepError.unknownTemplate(t, known: templates) }
            let best = largestRemoval(of: t, minCosine: minCosine)
            let ok = best >= minRemoved - 1e-12
            return CheckResult(name: "min-removed", measured: best, limit: minRemoved, comparison: "at_least", passed: ok,
                               message: "\(t): removes " + String(format: "%.1f%% of the parameters with cosine ≥ %g (at least %.1f%%)",
                                                                  100 * best, minCosine, 100 * minRemoved))
        }
    }

    /// The report as pretty-printed JSON with sorted keys.
    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: try e.encode(self), as: UTF8.self) + "\n"
    }

    /// Reads a report written by ``json()``.
    public static func read(_ data: Data) throws -> SweepReport {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try d.decode(SweepReport.self, from: data)
    }

    /// One row per run: the figures of the JSON, comma-separated, with a header line.
    public func csv() -> String {
        func q(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        func n(_ x: Double?) -> String { x.map { String(format: "%.6g", $0) } ?? "" }
        var out = "pipeline,amount,params,macs,params_removed,macs_removed,cosine,rel_l2,top1,perplexity,latency_ms,ort_latency_ms,seconds,output\n"
        for r in runs {
            out += [q(r.pipeline), n(r.amount), String(r.params), r.macs.map(String.init) ?? "", n(r.paramsRemoved), n(r.macsRemoved),
                    n(r.cosine), n(r.relL2), n(r.top1), n(r.perplexity), n(r.latencyMs), n(r.ortLatencyMs), n(r.seconds), q(r.output)]
                .joined(separator: ",") + "\n"
        }
        return out
    }
}
