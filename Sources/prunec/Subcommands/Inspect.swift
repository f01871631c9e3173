import ArgumentParser
import Foundation
import PruneIR

extension Prunec {
    /// `prunec inspect MODEL`: what a model holds.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a model's interface, operators, parameters and MACs.")

        @OptionGroup var input: ModelInputOptions

        func run() throws {
            try reportingErrors {
                let model = try input.load()
                print("nodes: \(model.graph.allNodes.count)")
                PeakMemory.reportIfAsked(input.reportPeakRSS)
            }
        }
    }
}
