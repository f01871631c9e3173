import ArgumentParser
import Foundation
import PruneIR
import PruneKit

/// `--pass`, `--calib`, `--teacher`, `--seed`, `--compare`: what the compile command runs.
struct PipelineOptions: ParsableArguments {
    @Option(name: .customLong("pass"), help: ArgumentHelp("A pass or pipeline to run (repeatable), e.g. 'magnitude{sparsity=0.3}'.", valueName: "pipeline"))
    var passes: [String] = []

    @Option(name: .customLong("calib"), help: ArgumentHelp("Calibration data (.npz keyed by input name, with optional set1., set2. ... samples, or a test_data_set folder) for the passes and the validation.", valueName: "data"))
    var calib: String?

    @Option(name: .customLong("teacher"), help: ArgumentHelp("The original model, when MODEL was pruned earlier: the teacher of distill and the reference of the validation (default: MODEL as loaded).", valueName: "original.onnx"))
    var teacher: String?

    @Option(help: ArgumentHelp("Seed for passes and sample inputs.", valueName: "n"))
    var seed: UInt64 = 0

    @Option(name: .customLong("compare"), help: ArgumentHelp("A baseline pipeline run on the original and reported beside the result (repeatable), e.g. 'magnitude{params=0.2},fold-masks'.", valueName: "pipeline"))
    var compare: [String] = []

    /// Every --pass joined into one pipeline text; a syntax error is a usage error with its column.
    func pipelineText() throws -> String {
        for text in passes + compare {
            do { _ = try Pipeline.parse(text) } catch let e as PipelineError { throw ValidationError("\(compare.contains(text) ? "--compare" : "--pass"): \(e)") }
        }
        return passes.joined(separator: ",")
    }
}

/// `--report`, `--max-drift`, `--no-validate`, `--runs`, `--shape`: how the result is checked.
struct ValidationOptions: ParsableArguments {
    @Option(name: .customLong("report"), help: ArgumentHelp("Write the report (before/after, drift, passes) as JSON here.", valueName: "file.json"))
    var report: String?

    @Option(name: .customLong("max-drift"), help: ArgumentHelp("Refuse to write the result when any output's relative L2 drift exceeds this (e.g. 0.05).", valueName: "x"))
    var maxDrift: Double?

    @Flag(name: .customLong("no-validate"), help: "Skip running the original and the result (no drift, no latency).")
    var noValidate = false

    @Option(help: ArgumentHelp("Timed interpreter runs per model for the latency figures.", valueName: "n"))
    var runs: Int = 5

    @Option(name: .customLong("shape"), help: ArgumentHelp("Shape of a synthesized sample input when there is no --calib (repeatable).", valueName: "name=1x16"))
    var shapes: [String] = []

    @Option(name: .customLong("sampling-runs"), help: ArgumentHelp("For a denoiser: 8-step sampling runs whose final samples are compared (0: none).", valueName: "n"))
    var samplingRuns: Int = 2

    func validate() throws {
        if samplingRuns < 0 || samplingRuns > 1024 { throw ValidationError("--sampling-runs must be between 0 and 1024, got \(samplingRuns)") }
        if let maxDrift, !(maxDrift >= 0) { throw ValidationError("--max-drift must be 0 or more, got \(maxDrift)") }
        if runs < 1 { throw ValidationError("--runs must be at least 1, got \(runs)") }
        if maxDrift != nil && noValidate { throw ValidationError("--max-drift needs the validation that --no-validate skips") }
        _ = try InputShapes.parse(shapes)
    }
}

/// `--verify-each`, `--print-ir-after`, `-v`: watching the passes.
struct InstrumentationOptions: ParsableArguments {
    @Flag(name: .customLong("verify-each"), help: "Verify the IR after every pass (always on in debug builds).")
    var verifyEach = false

    @Option(name: .customLong("print-ir-after"), help: ArgumentHelp("Print the IR to stderr after the named pass (repeatable).", valueName: "pass"))
    var printIRAfter: [String] = []

    @Flag(name: [.customShort("v"), .long], help: "Log every pass's details.")
    var verbose = false

    /// The hooks these flags ask for.
    var instrumentations: [PassInstrumentation] {
        printIRAfter.isEmpty ? [] : [PrintIRAfter(Set(printIRAfter)) { FileHandle.standardError.write(Data($0.utf8)) }]
    }
}
