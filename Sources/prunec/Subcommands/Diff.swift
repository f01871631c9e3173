import ArgumentParser
import Foundation
import PruneIR
import PruneKit

extension Prunec {
    /// `prunec diff A B`: per-layer shrinkage between two models.
    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare two models layer by layer: weight shapes, parameters and MACs.",
            discussion: """
                Every MAC-bearing node (Conv, ConvTranspose, MatMul, Gemm, Einsum) of A is matched \
                with the node of B that has the same name (unnamed nodes: the same weight \
                initializer name); layers found in only one model are listed as removed or added. \
                The reduction column is (A − B) / A of the layer's MACs (of its parameters when \
                MACs are unknown). Totals compare parameters, MACs, nodes and file size (external \
                data included). MACs need static shapes: bind dynamic inputs with --shape, which \
                applies to both models.
                """)

        @Argument(help: ArgumentHelp("The original model.", valueName: "a"))
        var a: String

        @Argument(help: ArgumentHelp("The model to compare with it (pruned, folded, ...).", valueName: "b"))
        var b: String

        @Option(
            name: .customLong("shape"),
            help: ArgumentHelp("Bind a graph input's shape in both models for MAC counting (repeatable).", valueName: "name=1x3x224x224"))
        var shapes: [String] = []

        @Flag(help: "Print one JSON object (sorted keys) instead of tables.")
        var json = false

        func validate() throws {
            _ = try InputShapes.parse(shapes, synthesized: false)
        }

        func run() throws {
            try reportingErrors {
                let diff = try ModelDiff.compare(a, b, shapes: try InputShapes.parse(shapes, synthesized: false))
                print(json ? try diff.json() : diff.text(), terminator: json ? "\n" : "")
            }
        }
    }
}
