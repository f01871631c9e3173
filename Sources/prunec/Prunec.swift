import ArgumentParser
import Foundation
import PruneIR

/// The `prunec` command: compiles (by default), inspects and checks ONNX models.
@main
struct Prunec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prunec",
        abstract: "Structured pruning compiler for ONNX models.",
        discussion: """
            prunec loads an ONNX model into a typed graph IR, runs pruning passes on it, checks the \
            result against the original and writes a smaller ONNX model:

              prunec model.onnx --pass 'magnitude{sparsity=0.3}' --pass fold-masks -o small.onnx --calib data.npz
              prunec check small.onnx --baseline model.onnx --min-param-reduction 20% --max-drift 0.05
              prunec sweep model.onnx --pass 'magnitude{params=$x},fold-masks' --at 0.1,0.2,0.3 --calib data.npz -o sweep/

            With no pass, `prunec MODEL -o OUT` is a round trip: import, verify, export.

            Plugins: --plugin lib.so (repeatable) or PRUNEC_PLUGIN_PATH=a.so:b.so adds a library's passes \
            (see docs/WRITING_PASSES.md); `prunec passes --plugin lib.so` lists them.

            Exit codes: 0 ok, 1 check failed, 64 usage error (a --plugin path that is no library \
            included), 65 bad model or data (a plugin without the entry point, of another API \
            version, or with a pass name already taken included), 70 internal error.
            """,
        version: PrunecVersion.string,
        subcommands: [Compile.self, Inspect.self, Run.self, Bench.self, Diff.self, Check.self, Sweep.self, Passes.self],
        defaultSubcommand: Compile.self
    )
}

enum PrunecVersion {
    static let string = "0.1.0"
}
