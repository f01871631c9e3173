import ArgumentParser
import Foundation
import PruneIR
import PruneRuntime

/// `--inputs DATA [--set N]`: a tensor data file bound to a model's inputs.
struct DataInputOptions: ParsableArguments {
    @Option(
        name: .customLong("inputs"),
        help: ArgumentHelp(
            "Input data: an .npz (keys are input names, optionally prefixed 'in.'), an .npy (for a one-input model), or an ONNX test_data_set folder.",
            valueName: "data"))
    var inputs: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Use calibration set N: the keys prefixed 'setN.' instead of the plain ones.", valueName: "N"))
    var calibrationSet: Int?

    func validate() throws {
        if let calibrationSet, calibrationSet < 0 { throw ValidationError("--set must be 0 or more, got \(calibrationSet)") }
        if calibrationSet != nil && inputs == nil { throw ValidationError("--set picks a calibration set from --inputs; give --inputs too") }
    }

    /// Reads the data file and binds it to `model`'s inputs; `nil` without `--inputs`.
    func load(for model: Model) throws -> [String: NDArray]? {
        guard let inputs else { return nil }
        let needed = model.graph.inputs.filter { $0.initializer == nil }.map(\.name)
        let entries = try TensorData.load(URL(fileURLWithPath: inputs), displayName: inputs, inputNames: needed)
        return try TensorData.bind(entries, to: model.graph, set: calibrationSet, file: inputs)
    }
}

/// `--threads N`.
struct ThreadOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads for BLAS and the kernels' parallel loops (default: all cores).", valueName: "N"))
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }
}

enum InterpreterSupport {
    /// Builds an interpreter; a model with nodes that have no kernel is a bad-input error (exit 65)
    /// that names the model file and lists the nodes.
    static func make(_ model: Model, file: String, threads: Int) throws -> Interpreter {
        do {
            return try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
        } catch let e as RuntimeError {
            Diagnostics.error("\(file): \(e)")
            throw ExitCode(PrunecExit.badInput)
        }
    }
}
