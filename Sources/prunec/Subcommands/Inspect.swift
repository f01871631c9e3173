import ArgumentParser
import Foundation
import PruneIR

extension Prunec {
    /// `prunec inspect MODEL`: what a model holds.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a model's interface, operators, parameters and MACs.",
            discussion: """
                MACs count Conv, ConvTranspose, MatMul, Gemm and Einsum (element-wise ops count 0); they \
                need static shapes: bind dynamic inputs with --shape. Weights are memory-mapped and never \
                read, so inspecting a model of any size takes little memory.
                """)

        @OptionGroup var input: ModelInputOptions

        @Option(
            name: .customLong("shape"),
            help: ArgumentHelp("Bind a graph input's shape for MAC counting (repeatable).", valueName: "name=1x3x224x224"))
        var shapes: [String] = []

        @Flag(help: "Print one JSON object (sorted keys) instead of tables.")
        var json = false

        @Flag(name: .customLong("all-nodes"), help: "List every node's MACs, not only the 10 largest.")
        var allNodes = false

        @Flag(name: .customLong("no-check"), help: "Skip libonnx's checker.")
        var noCheck = false

        func validate() throws {
            _ = try parsedShapes()
        }

        func parsedShapes() throws -> [String: Shape] {
            var out: [String: Shape] = [:]
            for s in shapes {
                let parts = s.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw ValidationError("--shape expects name=DIMS such as input=1x3x224x224, got '\(s)'")
                }
                var dims: [Dim] = []
                for d in parts[1].split(separator: "x", omittingEmptySubsequences: false) {
                    if let v = Int(d), v >= 0 {
                        dims.append(.known(v))
                    } else {
                        throw ValidationError("--shape \(s): '\(d)' is not a dimension (write numbers joined by 'x')")
                    }
                }
                out[String(parts[0])] = Shape(dims)
            }
            return out
        }

        func run() throws {
            try reportingErrors {
                let model = try input.load()
                let shapes = try parsedShapes()
                let inputNames = Set(model.graph.inputs.map(\.name))
                for name in shapes.keys where !inputNames.contains(name) {
                    throw ValidationError("--shape names '\(name)', which is not an input of \(input.model) (inputs: \(model.graph.inputs.filter { $0.initializer == nil }.map(\.name).joined(separator: ", ")))")
                }
                var check: LibONNXResult?
                if !noCheck {
                    let opsets = Dictionary(model.opsetImports.map { ($0.domain, Int($0.version)) }, uniquingKeysWith: { a, _ in a })
                    check = LibONNX.check(modelAt: input.url, irVersion: Int(model.irVersion), opsets: opsets, fullCheck: false)
                }
                let summary = ModelSummary(model: model, file: input.model, shapes: shapes, check: check)
                if json {
                    print(try summary.json())
                } else {
                    print(InspectTables.render(summary, allNodes: allNodes), terminator: "")
                }
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}
