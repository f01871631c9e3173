import ArgumentParser
import Foundation
import PruneKit

extension Prunec {
    /// `prunec sweep MODEL --pass TEMPLATE... --at AMOUNTS -o DIR`: the size/quality/latency curve.
    struct Sweep: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run pipelines at several amounts and report the size / quality / latency trade-off (HTML, JSON, CSV).",
            discussion: """
                Each --pass is one pipeline with a $x placeholder for the amount. Every pipeline runs \
                at every --at amount on the original; each result is written to DIR and measured \
                against the original on the calibration data (or synthesized inputs): parameters, \
                MACs, mean cosine and worst relative L2 of the outputs, top-1 agreement for a \
                classifier, perplexity for a causal LM (token ids as 'input_ids'), interpreter \
                latency, and onnxruntime latency with --ort. Scores are computed once per pipeline \
                and reused at every amount. Each pruning group is also pruned alone (by weight \
                norm, at --sensitivity) to name the most and least sensitive layers.

                DIR gets the models, report.html (one self-contained page with the charts), \
                report.json and report.csv. `prunec check --sweep DIR/report.json` gates on it.

                Example:
                  prunec sweep bert.onnx --calib bert.calib.npz --at 0.1,0.2,0.3,0.4,0.5 -o sweep \\
                    --pass 'fluctuation{params=$x},reconstruct,fold-masks' --pass 'magnitude{params=$x},fold-masks'
                """)

        @OptionGroup var input: ModelInputOptions
        @OptionGroup var pluginOptions: PluginOptions

        @Option(name: .customLong("pass"), help: ArgumentHelp("A pipeline with a $x placeholder for the amount (repeatable).", valueName: "pipeline"))
        var templates: [String] = []

        @Option(name: .customLong("at"), help: ArgumentHelp("Amounts substituted for $x, comma-separated (fractions or percentages).", valueName: "0.1,0.2,..."))
        var at: String = "0.1,0.2,0.3,0.4,0.5"

        @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The folder for the models and reports.", valueName: "dir"))
        var output: String

        @Option(name: .customLong("calib"), help: ArgumentHelp("Calibration data for the passes and the measurements.", valueName: "data"))
        var calib: String?

        @Option(name: .customLong("ort"), help: ArgumentHelp("A Python with onnxruntime: also time every model in onnxruntime.", valueName: "python"))
        var ort: String?

        @Option(help: ArgumentHelp("Fraction of its units each group loses alone for the sensitivity chart (default: the middle amount).", valueName: "x"))
        var sensitivity: String?

        @Option(help: ArgumentHelp("Seed for passes and sample inputs.", valueName: "n"))
        var seed: UInt64 = 0

        @Option(help: ArgumentHelp("Timed interpreter runs per model.", valueName: "n"))
        var runs: Int = 5

        @Option(name: .customLong("shape"), help: ArgumentHelp("Shape of a synthesized input when there is no --calib (repeatable).", valueName: "name=1x16"))
        var shapes: [String] = []

        @OptionGroup var threadOptions: ThreadOptions

        @Flag(name: [.customShort("v"), .long], help: "Log every pass's details.")
        var verbose = false

        /// A fraction written 0.3 or 30%.
        static func fraction(_ text: String, _ flag: String) throws -> Double {
            guard let v = Double(fractionText: text), v >= 0, v < 1 else {
                throw ValidationError("--\(flag) expects fractions from 0 to below 1 (0.3 or 30%), got '\(text)'")
            }
            return v
        }

        func amounts() throws -> [Double] { try at.split(separator: ",").map { try Self.fraction(String($0), "at") } }

        func validate() throws {
            guard !templates.isEmpty else { throw ValidationError("give at least one --pass with a $x placeholder, e.g. 'magnitude{params=$x},fold-masks'") }
            if try amounts().isEmpty { throw ValidationError("--at needs at least one amount") }
            if let sensitivity { _ = try Self.fraction(sensitivity, "sensitivity") }
            if runs < 1 { throw ValidationError("--runs must be at least 1, got \(runs)") }
            _ = try InputShapes.parse(shapes)
        }

        func run() throws {
            try reportingErrors(file: input.model) {
                var o = PruneKit.Sweep.Options(templates: templates, amounts: try amounts(), folder: URL(fileURLWithPath: output))
                o.calibration = calib.map { URL(fileURLWithPath: $0) }
                o.ortPython = ort
                o.sensitivityAmount = try sensitivity.map { try Self.fraction($0, "sensitivity") }
                o.seed = seed
                o.latencyRuns = runs
                o.threads = threadOptions.threads
                o.sampleShapes = try InputShapes.parse(shapes)
                o.logger = StderrLog.logger(verbose: verbose)
                let sweep: PruneKit.Sweep
                do {
                    sweep = try PruneKit.Sweep(registry: try pluginOptions.registry(), options: o)
                } catch let e as PipelineError {
                    throw ValidationError("--pass: \(e)")
                } catch let e as SweepError {
                    throw ValidationError("\(e)")
                }
                let report = try sweep.run(modelAt: input.model)
                print(SweepText.render(report), terminator: "")
            }
        }
    }
}
