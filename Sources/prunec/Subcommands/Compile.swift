import ArgumentParser
import Foundation
import PruneIR

extension Prunec {
    /// `prunec MODEL -o OUT`: import, run the pipeline, verify, export.
    struct Compile: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compile a model: import, verify and write it (the default command).",
            discussion: "With no pass this is a round trip: an unchanged model is written back byte-identical where its writer was a conforming protobuf serializer.")

        @OptionGroup var input: ModelInputOptions
        @OptionGroup var outputOptions: ModelOutputOptions

        func validate() throws {
            guard outputOptions.output != nil else {
                throw ValidationError("missing -o/--output: where should the compiled model go?")
            }
        }

        func run() throws {
            try reportingErrors {
                let model = try input.load()
                guard let output = outputOptions.output else { return }
                try ModelExporter.write(model, to: URL(fileURLWithPath: output), options: outputOptions.exportOptions)
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}
