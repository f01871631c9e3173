import Foundation
import Logging
import PruneIR
import PruneRuntime

/// The sweep driver: what `prunec sweep` does. Each pipeline template (with a `$x` placeholder)
/// runs at every amount on a copy of the original; every result is written, measured against the
/// original on the same inputs (params, MACs, cosine, relative L2, top-1 agreement for
/// classifiers, perplexity for causal LMs, interpreter and optionally onnxruntime latency), and
/// each pruning group's sensitivity is measured by pruning it alone. Scores are computed once per
/// template: the runs of one template share a ``ScoreCache``.
public struct Sweep {
    /// What to sweep and how.
    public struct Options {
        /// Pipelines with a `$x` placeholder for the amount, e.g. `fluctuation{params=$x},reconstruct,fold-masks`.
        public var templates: [String]
        /// The amounts substituted for `$x`.
        public var amounts: [Double]
        /// The folder the models and the reports go to (created if missing).
        public var folder: URL
        /// Calibration data for the passes and the measurements.
        public var calibration: URL?
        /// Seed of passes and synthesized inputs.
        public var seed: UInt64 = 0
        /// Interpreter and BLAS threads.
        public var threads = 1
        /// Shapes of synthesized inputs when there is no calibration data.
        public var sampleShapes: [String: Shape] = [:]
        /// Timed interpreter runs per model.
        public var latencyRuns = 5
        /// A Python with onnxruntime: latency in onnxruntime too (``ortScript``).
        public var ortPython: String?
        /// The fraction of its units each group loses alone in the sensitivity analysis (`nil`:
        /// the middle amount).
        public var sensitivityAmount: Double?
        /// Where pass logs and progress go.
        public var logger = Logger(label: "prunec")

        /// A sweep of `templates` over `amounts` into `folder`.
        public init(templates: [String], amounts: [Double], folder: URL) {
            self.templates = templates
            self.amounts = amounts
            self.folder = folder
        }
    }

    /// The options.
    public let options: Options
    private let registry: PassRegistry

    /// Checks every template at every amount against `registry` before any model is read.
    ///
    /// - Throws: ``SweepError`` for a template without `$x` or no amounts; ``PipelineError`` for a
    ///   pipeline that does not resolve at some amount.
    public init(registry: PassRegistry, options: Options) throws {
        guard !options.templates.isEmpty else { throw SweepError.noTemplate }
        guard !options.amounts.isEmpty, options.amounts.allSatisfy({ $0.isFinite && $0 >= 0 && $0 < 1 }) else {
            throw SweepError.badAmounts(options.amounts)
        }
        for t in options.templates {
            guard t.contains("$x") else { throw SweepError.noPlaceholder(t) }
            for a in options.amounts { _ = try registry.instantiate(Pipeline.parse(Self.pipeline(t, at: a))) }
        }
        self.options = options
        self.registry = registry
    }

    /// `template` with `$x` replaced by `amount` as pipeline text.
    public static func pipeline(_ template: String, at amount: Double) -> String {
        template.replacingOccurrences(of: "$x", with: amount.optionText)
    }

    /// The file name of one run's model: the template's index, its first pass and the amount.
    static func fileName(template index: Int, _ template: String, amount: Double) -> String {
        let first = template.prefix { $0.isLetter || $0 == "-" }
        return "p\(index + 1)-\(first)-\(String(format: "%.3f", amount)).onnx"
    }

    /// Runs the sweep on the model at `path`, writes every model and `report.json`, `report.csv`
    /// and `report.html` into the folder, and returns the report.
    ///
    /// - Throws: import, calibration, pass and export errors as the compile driver does.
    public func run(modelAt path: String) throws -> SweepReport {
        let fm = FileManager.default
        try fm.createDirectory(at: options.folder, withIntermediateDirectories: true)
        let original = try ModelFile.load(path)
        ShapeInference().run(on: original)
        let calibration = try options.calibration.map { try CalibrationData.load($0, for: original) } ?? []
        let sets = calibration.isEmpty ? [try SampleInputs.make(for: original, shapes: options.sampleShapes, seed: options.seed)] : calibration
        let quality = try QualityProbe(reference: original, sets: sets, threads: options.threads)
        let inputsFile = options.folder.appendingPathComponent(".sweep-inputs.npz")
        if options.ortPython != nil { try NPZ.write(sets[0].sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, to: inputsFile) }
        defer { try? fm.removeItem(at: inputsFile) }

        let baseline = SweepReport.Baseline(
            params: CostModel.parameterCount(original), macs: Validation.macs(model: original, at: sets[0]),
            latencyMs: try Validation.latency(model: original, inputs: sets[0], runs: options.latencyRuns, warmup: 1, threads: options.threads),
            ortLatencyMs: try ortLatency(URL(fileURLWithPath: path), inputs: inputsFile), perplexity: quality.referencePerplexity)
        let widthsBefore = Self.widths(original)
        var runs: [SweepReport.Run] = []
        var skipped: [SweepReport.Skipped] = []
        for (t, template) in options.templates.enumerated() {
            let cache = ScoreCache()
            for amount in options.amounts.sorted() {
                let text = Self.pipeline(template, at: amount)
                let output = options.folder.appendingPathComponent(Self.fileName(template: t, template, amount: amount))
                var o = Compiler.Options(pipeline: text)
                o.calibration = options.calibration
                o.seed = options.seed
                o.threads = options.threads
                o.sampleShapes = options.sampleShapes
                o.validate = false
                o.logger = options.logger
                o.output = output
                o.scoreCache = cache
                options.logger.info("sweep: \(text) (\(runs.count + 1)/\(options.templates.count * options.amounts.count))")
                let started = Date()
                let result: Compiler.Result
                do {
                    result = try Compiler(registry: registry, options: o).compile(original.copy(), file: path)
                } catch let f as PassFailure where f.underlying is SelectionError {
                    // A target beyond what the groups allow: keep the runs that can be made.
                    options.logger.warning("sweep: skipping \(text): \(f.underlying)")
                    skipped.append(.init(pipeline: text, amount: amount, reason: "\(f.underlying)"))
                    continue
                }
                let seconds = Date().timeIntervalSince(started)
                let m = result.model
                let measured = try quality.measure(m)
                let params = CostModel.parameterCount(m), macs = Validation.macs(model: m, at: sets[0])
                let after = Self.widths(m)
                let widths = widthsBefore.map { SweepReport.LayerWidth(layer: $0.key, before: $0.value, after: after[$0.key] ?? 0) }
                let paramsRemoved = 1 - Double(params) / Double(max(baseline.params, 1))
                var macsRemoved: Double?
                if let m0 = baseline.macs, let m1 = macs { macsRemoved = 1 - Double(m1) / Double(max(m0, 1)) }
                let latency = try Validation.latency(model: m, inputs: sets[0], runs: options.latencyRuns, warmup: 1, threads: options.threads)
                let ort = try ortLatency(output, inputs: inputsFile)
                let command = Self.command(path, text, calibration: options.calibration, output: output, seed: options.seed)
                runs.append(SweepReport.Run(
                    template: template, pipeline: text, amount: amount, command: command, output: output.lastPathComponent,
                    params: params, macs: macs, paramsRemoved: paramsRemoved, macsRemoved: macsRemoved,
                    cosine: measured.cosine, relL2: measured.relL2, top1: measured.top1, perplexity: measured.perplexity,
                    latencyMs: latency, ortLatencyMs: ort, seconds: seconds, widths: widths.sorted { $0.layer < $1.layer }))
            }
            options.logger.info("sweep: \(template): scores computed \(cache.misses) time\(cache.misses == 1 ? "" : "s"), reused \(cache.hits) time\(cache.hits == 1 ? "" : "s")")
        }
        let amount = options.sensitivityAmount ?? options.amounts.sorted()[options.amounts.count / 2]
        guard !runs.isEmpty else { throw SweepError.nothingRan(skipped.map { "\($0.pipeline): \($0.reason)" }) }
        var report = SweepReport(model: path, calibration: options.calibration?.relativePath, templates: options.templates,
                                 amounts: options.amounts.sorted(), baseline: baseline, runs: runs,
                                 sensitivity: try sensitivity(original, amount: amount, quality: quality), sensitivityAmount: amount)
        report.skipped = skipped.isEmpty ? nil : skipped
        try AtomicFile.write(Data(try report.json().utf8), to: options.folder.appendingPathComponent("report.json"))
        try AtomicFile.write(Data(report.csv().utf8), to: options.folder.appendingPathComponent("report.csv"))
        try AtomicFile.write(Data(SweepHTML.render(report).utf8), to: options.folder.appendingPathComponent("report.html"))
        return report
    }

    /// Each prunable group alone loses `amount` of its units (lowest L2 weight norm first).
    private func sensitivity(_ original: Model, amount: Double, quality: QualityProbe) throws -> [SweepReport.Sensitivity] {
        let names = PruningGroups.analyze(original).groups(of: [.channels, .heads, .neurons]).map(\.name)
        var out: [SweepReport.Sensitivity] = []
        for (i, name) in names.enumerated() {
            let m = original.copy()
            guard let g = PruningGroups.analyze(m).groups(of: [.channels, .heads, .neurons]).first(where: { $0.name == name }) else { continue }
            let scores = try WeightNorms.unitScores(g)
            let k = min(g.unitCount - 1, Int((amount * Double(g.unitCount)).rounded()))
            guard k > 0 else { continue }
            var keep = [Float](repeating: 1, count: g.unitCount)
            for u in scores.indices.sorted(by: { (scores[$0], $0) < (scores[$1], $1) }).prefix(k) { keep[u] = 0 }
            try Masks.set(keep, for: g, in: m)
            let q = try quality.measure(m)
            out.append(.init(group: name, kind: g.kind.rawValue, amount: amount, relL2: q.relL2, cosine: q.cosine))
            options.logger.info("sweep: sensitivity \(i + 1)/\(names.count): \(name) rel L2 \(String(format: "%.4g", q.relL2))")
        }
        return out.sorted { ($0.relL2.isNaN ? .infinity : $0.relL2) > ($1.relL2.isNaN ? .infinity : $1.relL2) }
    }

    /// Times a model in onnxruntime: `python -c ortScript MODEL INPUTS.npz RUNS THREADS` prints the
    /// median milliseconds. Carried in the binary, so an installed prunec needs no script file.
    static let ortScript = """
        import sys, time, numpy as np, onnxruntime as ort
        model, inputs, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        data = np.load(inputs); feeds = {i.name: data[i.name] for i in sess.get_inputs()}
        sess.run(None, feeds); times = []
        for _ in range(runs):
            t0 = time.perf_counter(); sess.run(None, feeds); times.append((time.perf_counter() - t0) * 1000)
        print(float(np.median(times)))
        """

    /// onnxruntime's median latency (``ortScript``), when `ortPython` is set.
    private func ortLatency(_ model: URL, inputs: URL) throws -> Double? {
        guard let python = options.ortPython else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", Self.ortScript, model.path, inputs.path, String(max(5, options.latencyRuns)), String(options.threads)]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0, let ms = Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SweepError.ort(model: model.lastPathComponent, message: String(message.suffix(400)))
        }
        return ms
    }

    /// The command line that reproduces one run.
    static func command(_ model: String, _ pipeline: String, calibration: URL?, output: URL, seed: UInt64) -> String {
        "prunec \(model) --pass '\(pipeline)'" + (calibration.map { " --calib \($0.relativePath)" } ?? "") + " -o \(output.lastPathComponent)"
            + (seed == 0 ? "" : " --seed \(seed)")
    }

    /// Output features of every MAC-bearing layer with a constant weight, by node name.
    static func widths(_ model: Model) -> [String: Int] {
        var out: [String: Int] = [:]
        for n in model.graph.allNodes where ["MatMul", "Gemm", "Conv", "ConvTranspose"].contains(n.opType.name) {
            guard n.inputs.count > 1, let w = n.inputs[1]?.initializer, w.shape.count >= 2 else { continue }
            switch n.opType.name {
            case "MatMul": out[n.name] = w.shape[w.shape.count - 1]
            case "Gemm": out[n.name] = (try? n.attribute("transB", as: Int.self)) == 1 ? w.shape[0] : w.shape[1]
            case "ConvTranspose": out[n.name] = w.shape[1] * ((try? n.attribute("group", as: Int.self)) ?? 1)
            default: out[n.name] = w.shape[0]
            }
        }
        return out
    }
}

/// How far a model's outputs are from the original's on the sweep's inputs.
struct QualityProbe {
    let reference: [[String: NDArray]]
    let sets: [[String: NDArray]]
    let names: [String]
    let threads: Int
    let tokens: String?

    init(reference model: Model, sets: [[String: NDArray]], threads: Int) throws {
        let interpreter = try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
        let inputs = Set(model.graph.inputs.map(\.name))
        self.sets = sets.map { $0.filter { inputs.contains($0.key) } }
        reference = try self.sets.map { try interpreter.run($0) }
        names = model.graph.outputs.map(\.name)
        self.threads = threads
        // A causal LM: integer token ids [b, s] and a first output of logits [b, s, V].
        tokens = model.graph.inputs.first { v in
            v.initializer == nil && (v.type?.elementType == .int64 || v.type?.elementType == .int32) && v.name.contains("input_ids")
        }?.name
    }

    var referencePerplexity: Double? { perplexity(reference) }

    /// Mean cosine and worst relative L2 over the outputs, top-1 agreement of a classifier's first
    /// output, perplexity of a causal LM.
    func measure(_ model: Model) throws -> (cosine: Double, relL2: Double, top1: Double?, perplexity: Double?) {
        let interpreter = try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
        let outputs = try sets.map { try interpreter.run($0) }
        var sums = [DriftSums](repeating: DriftSums(), count: names.count)
        var compared = Set<Int>()
        var agree = 0, rows = 0
        for (ref, out) in zip(reference, outputs) {
            for (k, name) in names.enumerated() {
                guard let a = ref[name], let b = out[name], a.shape == b.shape, a.dtype.isFloatingPoint else { continue }
                sums[k].add(a, b)
                compared.insert(k)
            }
            // A classifier: the first output is [batch, classes].
            if let a = ref[names[0]], let b = out[names[0]], a.shape.count == 2, a.shape[1] > 1, a.shape == b.shape, tokens == nil {
                let c = a.shape[1]
                for r in 0..<a.shape[0] {
                    let ia = (0..<c).max { a.element(at: r * c + $0) < a.element(at: r * c + $1) }
                    let ib = (0..<c).max { b.element(at: r * c + $0) < b.element(at: r * c + $1) }
                    agree += ia == ib ? 1 : 0
                    rows += 1
                }
            }
        }
        // Only the floating-point outputs that were compared (integer outputs have no drift).
        let drift = compared.sorted().map { sums[$0].drift(name: names[$0]) }
        let cosine = drift.isEmpty ? .nan : drift.map(\.cosine).reduce(0, +) / Double(drift.count)
        let rel = drift.map(\.relL2).max() ?? .nan
        return (cosine, rel, rows > 0 ? Double(agree) / Double(rows) : nil, perplexity(outputs))
    }

    /// exp(mean next-token cross-entropy) of the first output's logits on the token ids.
    func perplexity(_ outputs: [[String: NDArray]]) -> Double? {
        guard let tokens else { return nil }
        var nll = 0.0, count = 0
        for (set, out) in zip(sets, outputs) {
            guard let ids = set[tokens], let logits = out[names[0]], logits.shape.count == 3, ids.shape.count == 2,
                  logits.shape[0] == ids.shape[0], logits.shape[1] == ids.shape[1] else { return nil }
            let (b, s, v) = (logits.shape[0], logits.shape[1], logits.shape[2])
            for r in 0..<b {
                for t in 0..<(s - 1) {
                    let next = Int(ids.element(at: r * s + t + 1))
                    guard next >= 0 && next < v else { return nil }
                    let base = (r * s + t) * v
                    var m = -Double.infinity
                    for j in 0..<v { m = max(m, logits.element(at: base + j)) }
                    var z = 0.0
                    for j in 0..<v { z += Foundation.exp(logits.element(at: base + j) - m) }
                    nll += m + Foundation.log(z) - logits.element(at: base + next)
                    count += 1
                }
            }
        }
        return count > 0 ? Foundation.exp(nll / Double(count)) : nil
    }
}

/// Why a sweep cannot run.
public enum SweepError: Error, CustomStringConvertible {
    /// No pipeline was given.
    case noTemplate
    /// A pipeline without the `$x` placeholder.
    case noPlaceholder(String)
    /// Amounts that are not fractions in [0, 1).
    case badAmounts([Double])
    /// onnxruntime could not time a model.
    case ort(model: String, message: String)
    /// Every run was skipped (no amount is reachable).
    case nothingRan([String])
    /// A gated template the sweep did not run.
    case unknownTemplate(String, known: [String])

    public var description: String {
        switch self {
        case .noTemplate: return "no pipeline to sweep: give --pass with a $x placeholder, e.g. 'magnitude{params=$x},fold-masks'"
        case .noPlaceholder(let t): return "pipeline '\(t)' has no $x placeholder for the amount (e.g. 'magnitude{params=$x},fold-masks')"
        case .badAmounts(let a): return "amounts must be fractions from 0 to below 1, got \(a.map(\.optionText).joined(separator: ","))"
        case .ort(let model, let message): return "onnxruntime could not time \(model): \(message)"
        case .nothingRan(let reasons): return "no run of the sweep could be made: " + reasons.joined(separator: "; ")
        case .unknownTemplate(let t, let known): return "the sweep ran no pipeline '\(t)' (it ran: \(known.joined(separator: "; ")))"
        }
    }
}
