import ArgumentParser
import Foundation
import PruneIR
import PruneKit

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

        @Flag(help: "List the pruning groups (channels, heads, neurons, residual blocks) with their size and cost, and why some are blocked.")
        var groups = false

        @Flag(name: .customLong("query-heads"), help: "With --groups: list the query heads of grouped-query attention as units of their own (what kinds=query-heads prunes) instead of kv groups.")
        var queryHeads = false

        func validate() throws {
            _ = try parsedShapes()
        }

        func parsedShapes() throws -> [String: Shape] {
            try InputShapes.parse(shapes, synthesized: false)
        }

        func run() throws {
            try reportingErrors {
                let model = try input.load()
                let shapes = try parsedShapes()
                try ModelFile.checkInputNames(shapes.keys, in: model, file: input.model)
                var check: LibONNXResult?
                if !noCheck {
                    let opsets = Dictionary(model.opsetImports.map { ($0.domain, Int($0.version)) }, uniquingKeysWith: { a, _ in a })
                    check = LibONNX.check(modelAt: input.url, irVersion: Int(model.irVersion), opsets: opsets, fullCheck: false)
                }
                let summary = ModelSummary(model: model, file: input.model, shapes: shapes, check: check)
                let analysis = groups ? PruningGroups.analyze(model, queryHeads: queryHeads) : nil
                if json {
                    var text = try summary.json()
                    if let analysis,
                        var object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                    {
                        object["groups"] = GroupTables.rows(analysis)
                        text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
                    }
                    print(text)
                } else {
                    print(InspectTables.render(summary, allNodes: allNodes), terminator: "")
                    if let analysis { print("\n" + GroupTables.render(analysis), terminator: "") }
                }
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}
