import ArgumentParser
import Foundation
import PruneIR
import PruneKit
import PruneRuntime

extension Prunec {
    /// `prunec run MODEL --inputs DATA [-o OUT.npz]`: runs a model on the reference interpreter.
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a model on the reference interpreter.",
            discussion: """
                Input data keys name the model's inputs, optionally prefixed 'in.'; other keys (out.*, \
                set1.*, ...) are ignored with a note. With -o the outputs are written to an .npz with \
                keys 'out.<output name>'; without it, a summary of each output is printed. A model with \
                operators the interpreter cannot run is rejected (exit 65) before anything runs, \
                listing every such node.
                """)

        @OptionGroup var input: ModelInputOptions
        @OptionGroup var data: DataInputOptions
        @OptionGroup var threading: ThreadOptions

        @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write the outputs to this .npz.", valueName: "file"))
        var output: String?

        func validate() throws {
            guard data.inputs != nil else { throw ValidationError("missing --inputs: which data should the model run on?") }
            if let output, !output.lowercased().hasSuffix(".npz") {
                throw ValidationError("-o must name an .npz file, got '\(output)'")
            }
        }

        func run() throws {
            try reportingErrors {
                let model = try input.load()
                guard let feeds = try data.load(for: model), let dataFile = data.inputs else { return }
                let interpreter = try InterpreterSupport.make(model, file: input.model, threads: threading.threads)
                interpreter.pool.resetCounters()
                let results = try TensorData.run(interpreter, on: feeds, file: dataFile)
                let outputs = model.graph.outputs.compactMap { v in results[v.name].map { (name: v.name, array: $0) } }
                if let output {
                    try NPZ.write(outputs.map { (name: "out." + $0.name, array: $0.array) }, to: URL(fileURLWithPath: output), displayName: output)
                } else {
                    print(OutputSummary.render(outputs), terminator: "")
                }
                if input.reportPeakRSS {
                    // For memory tests: what the run should cost, next to what it did.
                    let pool = interpreter.pool
                    FileHandle.standardError.write(Data("""
                        weight-bytes: \(interpreter.constantBytes)
                        arena-bytes: \(pool.reservedBytes)
                        intermediate-bytes: \(pool.requestedBytes)

                        """.utf8))
                }
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}

/// The per-output lines `prunec run` prints without -o.
enum OutputSummary {
    static func render(_ outputs: [(name: String, array: NDArray)]) -> String {
        let rows = outputs.map { o -> [String] in
            let a = o.array
            let shape = "[" + a.shape.map(String.init).joined(separator: ",") + "]"
            var stats = "(empty)"
            var nanCount = 0
            if a.count > 0 {
                var lo = Double.infinity, hi = -Double.infinity, sum = 0.0
                for i in 0..<a.count {
                    let x = a.element(at: i)
                    if x.isNaN { nanCount += 1; continue }
                    lo = min(lo, x)
                    hi = max(hi, x)
                    sum += x
                }
                let finite = a.count - nanCount
                stats = finite == 0 ? "all NaN" : "min \(number(lo))  max \(number(hi))  mean \(number(sum / Double(finite)))"
                if nanCount > 0 && finite > 0 { stats += "  NaN \(nanCount)" }
            }
            let first = (0..<min(a.count, 6)).map { number(a.element(at: $0)) }.joined(separator: ", ")
            return [o.name, "\(a.dtype)", shape, stats, "[" + first + (a.count > 6 ? ", ..." : "") + "]"]
        }
        return TextTable.table(["output", "type", "shape", "values", "first"], rows)
    }

    static func number(_ x: Double) -> String {
        if x.isNaN || x.isInfinite { return "\(x)" }
        if x == x.rounded() && abs(x) < 1e15 { return String(Int64(x)) }
        return String(format: "%.6g", x)
    }
}
