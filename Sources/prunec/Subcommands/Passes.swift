import ArgumentParser
import PruneKit

extension Prunec {
    /// `prunec passes`: the registered passes, one per line with its name first.
    struct Passes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the passes a pipeline can use.",
            discussion: "One pass per line, its name first; a plugin's passes end with [plugin: FILE]. With --options, each pass's options follow it, indented.")

        @OptionGroup var pluginOptions: PluginOptions

        @Flag(help: "Also list each pass's options (key, type, default, range, help).")
        var options = false

        @Flag(help: "Print the pass reference in Markdown instead (docs/PASSES.md is this output).")
        var markdown = false

        func run() throws {
            let registry = try pluginOptions.registry()
            if markdown { return print(PassReference.markdown(registry), terminator: "") }
            let entries = registry.all
            let width = entries.map(\.name.count).max() ?? 0
            for e in entries {
                let origin = e.origin.map { " [plugin: \($0)]" } ?? ""
                print(e.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + e.summary + origin)
                guard options else { continue }
                for o in e.options { print("    \(o.summary)") }
            }
        }
    }
}
