import ArgumentParser
import Foundation
import PruneIR
import PruneKit

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
                output exceeds the limit is not written (exit 1). Each --compare pipeline is run on \
                the original too and reported beside the result (a baseline such as magnitude).

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
        @OptionGroup var pipeline: PipelineOptions
        @OptionGroup var validation: ValidationOptions
        @OptionGroup var threadOptions: ThreadOptions
        @OptionGroup var instrumentation: InstrumentationOptions

        func validate() throws {
            guard outputOptions.output != nil || !pipeline.passes.isEmpty && validation.report != nil else {
                throw ValidationError("missing -o/--output: where should the compiled model go?")
            }
            _ = try pipeline.pipelineText()
            if !pipeline.compare.isEmpty && validation.noValidate {
                throw ValidationError("--compare needs the validation that --no-validate skips")
            }
        }

        /// The driver's options from the flags.
        func options() throws -> Compiler.Options {
            var o = Compiler.Options(pipeline: try pipeline.pipelineText())
            o.calibration = pipeline.calib.map { URL(fileURLWithPath: $0) }
            o.teacher = pipeline.teacher.map { URL(fileURLWithPath: $0) }
            o.compare = pipeline.compare
            o.seed = pipeline.seed
            o.threads = threadOptions.threads
            o.sampleShapes = try InputShapes.parse(validation.shapes)
            o.validate = !validation.noValidate
            o.validateRoundTrip = validation.report != nil
            o.latencyRuns = validation.runs
            o.samplingRuns = validation.samplingRuns
            o.maxDrift = validation.maxDrift
            if instrumentation.verifyEach { o.verifyEach = true }
            o.instrumentations = instrumentation.instrumentations
            o.logger = StderrLog.logger(verbose: instrumentation.verbose)
            o.output = outputOptions.output.map { URL(fileURLWithPath: $0) }
            o.exportOptions = outputOptions.exportOptions
            return o
        }

        func run() throws {
            try reportingErrors(file: input.model) {
                // Plugins load and the pipeline is checked against every pass before any model is read.
                let compiler: Compiler
                do {
                    compiler = try Compiler(registry: try pluginOptions.registry(), options: try options())
                } catch let e as PipelineError {
                    throw ValidationError("\(pipeline.compare.contains(e.text) ? "--compare" : "--pass"): \(e)")
                }
                // The report is written after the model: a report that cannot be written must fail
                // before the model is, or a failed run would leave the model behind.
                if let path = validation.report {
                    AtomicFile.discard(try AtomicFile.writeTemporary(near: URL(fileURLWithPath: path), displayName: path) { _ in })
                }
                let result = try compiler.compile(modelAt: input.model).report
                if let path = validation.report { try AtomicFile.write(Data(try result.json().utf8), to: URL(fileURLWithPath: path)) }
                if !compiler.manager.passes.isEmpty || result.inputs != nil { print(result.text(), terminator: "") }
                if !result.passed {
                    Diagnostics.error("drift \(result.worstDrift ?? .nan) exceeds --max-drift \(validation.maxDrift ?? 0); \(outputOptions.output ?? "the result") was not written")
                    throw ExitCode(1)
                }
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}
