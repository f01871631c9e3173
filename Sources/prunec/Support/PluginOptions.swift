import ArgumentParser
import Foundation
import BuiltinPasses
import PruneKit

/// `--plugin PATH` (repeatable) and `PRUNEC_PLUGIN_PATH`: the pass registry is the built-in passes
/// plus every plugin's.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"), help: ArgumentHelp(
        "Load passes from a plugin library (repeatable; also the colon-separated PRUNEC_PLUGIN_PATH). A path that is no library exits 64; a library without prunec_plugin_register, of another API version, or registering a pass name already taken exits 65.",
        valueName: "lib.so"))
    var plugins: [String] = []

    /// The libraries to load: `PRUNEC_PLUGIN_PATH`'s first, then `--plugin`'s, in order.
    var paths: [String] {
        PluginLoader.paths(fromEnvironmentValue: ProcessInfo.processInfo.environment["PRUNEC_PLUGIN_PATH"]) + plugins
    }

    /// The built-in passes and the plugins' passes. Call before touching any model.
    ///
    /// - Throws: `ValidationError` (exit 64) for a path that is no loadable library, `ExitCode(65)`
    ///   after a message for a library whose contents are refused.
    func registry() throws -> PassRegistry {
        var registry = BuiltinPasses.registry
        for path in paths {
            do {
                try PluginLoader.load(path, into: &registry)
            } catch let e as PluginError {
                if e.isUsageError { throw ValidationError("--plugin: \(e)") }
                Diagnostics.error("\(e)")
                throw ExitCode(PrunecExit.badInput)
            }
        }
        return registry
    }
}
