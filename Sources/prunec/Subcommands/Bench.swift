import ArgumentParser
import Foundation
import PruneIR
import PruneKit
import PruneRuntime

extension Prunec {
    /// `prunec bench MODEL`: latency, per-op time, throughput and memory of the interpreter.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmark a model on the reference interpreter.",
            discussion: """
                Without --inputs, inputs are synthesized from the model's input types with a fixed seed: \
                floats are standard normal, integers that index an embedding table (a Gather of a \
                constant) are valid ids of that table, other integers are in [0, 100), booleans are random. Symbolic dimensions are 1 unless --shape binds them, except an image's open height and width: those take a size every layer accepts (the model's metadata, else 224x224, 640x640, 48x320, ... checked by shape inference). \
                The report gives median/min/p90 latency over --runs runs after --warmup runs, time per \
                op type, GFLOP/s from the model's MACs (2 FLOPs per MAC), the arena size against the \
                sum of all intermediate tensors of one run, weight bytes and peak RSS.
                """)

        @OptionGroup var input: ModelInputOptions
        @OptionGroup var data: DataInputOptions
        @OptionGroup var threading: ThreadOptions

        @Option(help: ArgumentHelp("Measured runs.", valueName: "R"))
        var runs = 10

        @Option(help: ArgumentHelp("Unmeasured runs first (they also grow the arena to its final size); at least 0.25 s of them unless 0, so the thread pool has settled on the cores and the process is past its slow start.", valueName: "W"))
        var warmup = 2

        @Option(
            name: .customLong("shape"),
            help: ArgumentHelp("Shape of a synthesized input (repeatable); symbolic dims default to 1 (open image sizes: see above).", valueName: "name=1x16"))
        var shapes: [String] = []

        @Flag(help: "Print one JSON object (sorted keys) instead of tables.")
        var json = false

        func validate() throws {
            if runs < 1 { throw ValidationError("--runs must be at least 1, got \(runs)") }
            if warmup < 0 { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
            if !shapes.isEmpty && data.inputs != nil {
                throw ValidationError("--shape sets the shapes of synthesized inputs; with --inputs the data gives the shapes")
            }
            _ = try InputShapes.parse(shapes)
        }

        func run() throws {
            try reportingErrors {
                let model = try input.load()
                let shapes = try InputShapes.parse(shapes)
                try ModelFile.checkInputNames(shapes.keys, in: model, file: input.model)
                let feeds = try data.load(for: model) ?? SampleInputs.make(for: model, shapes: shapes)
                let report = try Benchmark.measure(model, file: input.model, feeds: feeds, inputsFile: data.inputs,
                                                   runs: runs, warmup: warmup, threads: threading.threads, peakRSS: { PeakMemory.bytes })
                print(json ? try report.json() : report.text(), terminator: json ? "\n" : "")
                let core = report.blasCoreChoice
                if core.isGeneric {
                    let why = core.userSet ? "OPENBLAS_CORETYPE asks for it" : "this OpenBLAS cannot choose again in process"
                    Diagnostics.warning("OpenBLAS runs its '\(core.active)' kernels, older than this CPU allows ('\(core.best)'; \(why)): every product runs slower than it could; set OPENBLAS_CORETYPE=\(core.best)")
                }
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}

