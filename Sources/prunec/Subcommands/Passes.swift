import ArgumentParser
import PruneKit

extension Prunec {
    /// `prunec passes`: the registered passes, one per line with its name first.
    struct Passes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the passes a pipeline can use.",
            discussion: "One pass per line, its name first. With --options, each pass's options follow it, indented.")

        @Flag(help: "Also list each pass's options (key, type, default, help).")
        var options = false

        func run() throws {
            let entries = BuiltinPasses.registry.all
            let width = entries.map(\.name.count).max() ?? 0
            for e in entries {
                print(e.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + e.summary)
                guard options else { continue }
                for o in e.options {
                    let d = o.defaultValue.map { "default \($0)" } ?? "required"
                    print("    \(o.key)=<\(o.kind)> (\(d)): \(o.help)")
                }
            }
        }
    }
}
