import ArgumentParser
import Foundation
import PruneIR
import PruneKit

extension Prunec {
    /// `prunec check MODEL --baseline B [thresholds]`: the CI gate.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a model against its baseline: size, compute and output drift (a CI gate).",
            discussion: """
                Measures the parameters and MACs of both models and runs both on the same inputs: \
                every set of --inputs (plain keys, then set1., set2., ...; or every \
                test_data_set_N folder), or one synthesized set (seed 0, --shape binds dynamic \
                dims). Drift is reported per output as max abs, relative L2 (‖a−b‖/‖a‖, a the \
                baseline) and cosine; --max-drift limits the worst relative L2. Each threshold \
                given is a named check; without any, the report is printed and the exit status is 0.

                With --sweep DIR/report.json (from `prunec sweep`), the gate is the trade-off curve \
                instead: for each pipeline, the largest fraction of parameters removed while the mean \
                cosine stays at least --min-cosine must reach --min-removed.

                Exit codes: 0 all checks passed, 1 a check failed, 64 usage error, 65 bad model or data.
                """)

        @Argument(help: ArgumentHelp("The model to check (not with --sweep).", valueName: "model"))
        var model: String?

        @Option(help: ArgumentHelp("The model to compare against (the original).", valueName: "model"))
        var baseline: String?

        @OptionGroup var sweep: SweepGateOptions

        @Option(
            name: .customLong("min-param-reduction"),
            help: ArgumentHelp("Fail unless the parameter count fell by at least this much: 20% or 0.2.", valueName: "fraction"))
        var minParamReduction: String?

        @Option(
            name: .customLong("min-mac-reduction"),
            help: ArgumentHelp("Fail unless the MACs fell by at least this much: 20% or 0.2.", valueName: "fraction"))
        var minMACReduction: String?

        @Option(name: .customLong("max-params"), help: ArgumentHelp("Fail if the model has more parameters.", valueName: "N"))
        var maxParams: Int?

        @Option(name: .customLong("max-macs"), help: ArgumentHelp("Fail if the model needs more MACs.", valueName: "N"))
        var maxMACs: Int?

        @Option(
            name: .customLong("max-drift"),
            help: ArgumentHelp("Fail if the relative L2 drift of any output is above this.", valueName: "x"))
        var maxDrift: Double?

        @Option(
            help: ArgumentHelp(
                "Input data for the drift: an .npz (every set in it), an .npy, or a folder of ONNX test_data_set_N folders (default: synthesized).",
                valueName: "data"))
        var inputs: String?

        @Option(
            name: .customLong("shape"),
            help: ArgumentHelp("Shape of a synthesized input (repeatable); symbolic dims default to 1, an image's open height and width to a size every layer accepts.", valueName: "name=1x16"))
        var shapes: [String] = []

        @Option(help: ArgumentHelp("Report format.", valueName: "text|json|markdown|junit"))
        var format: CheckFormat = .text

        @Option(help: ArgumentHelp("Also write the report to this file (atomically).", valueName: "file"))
        var output: String?

        @OptionGroup var threading: ThreadOptions

        func validate() throws {
            if sweep.sweep != nil {
                guard model == nil && baseline == nil else { throw ValidationError("--sweep checks a sweep report: give no model or --baseline") }
                return try sweep.check()
            }
            guard model != nil, baseline != nil else { throw ValidationError("give MODEL and --baseline (or --sweep report.json)") }
            _ = try thresholds()
            if !shapes.isEmpty && inputs != nil {
                throw ValidationError("--shape sets the shapes of synthesized inputs; with --inputs the data gives the shapes")
            }
            _ = try InputShapes.parse(shapes)
        }

        /// The thresholds as given; a malformed one is a usage error.
        func thresholds() throws -> CheckThresholds {
            func fraction(_ text: String?, _ flag: String) throws -> Double? {
                guard let text else { return nil }
                guard let v = Double(fractionText: text) else { throw ValidationError("--\(flag) expects a fraction (0.3 or 30%), got '\(text)'") }
                guard (0...1).contains(v) else { throw ValidationError("--\(flag) must be between 0 and 1 (or 0% and 100%), got '\(text)'") }
                return v
            }
            if let maxDrift, !(maxDrift.isFinite && maxDrift >= 0) {
                throw ValidationError("--max-drift must be a number of 0 or more, got \(maxDrift)")
            }
            if let maxParams, maxParams < 0 { throw ValidationError("--max-params must be 0 or more, got \(maxParams)") }
            if let maxMACs, maxMACs < 0 { throw ValidationError("--max-macs must be 0 or more, got \(maxMACs)") }
            return CheckThresholds(
                minParamReduction: try fraction(minParamReduction, "min-param-reduction"),
                minMACReduction: try fraction(minMACReduction, "min-mac-reduction"),
                maxParams: maxParams, maxMACs: maxMACs, maxDrift: maxDrift)
        }

        func run() throws {
            try reportingErrors {
                if let path = sweep.sweep { return try sweep.run(path) }
                let report = try CheckReport.measure(
                    model: model ?? "", baseline: baseline ?? "", inputs: inputs, shapes: try InputShapes.parse(shapes),
                    threads: threading.threads, thresholds: try thresholds())
                let text = try format.render(report)
                print(text, terminator: "")
                if let output { try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: output)) }
                if !report.passed { throw ExitCode(1) }
            }
        }
    }
}
