import Foundation
import PruneIR

/// Reading the model files the drivers work on.
public enum ModelFile {
    /// Loads the model at `path` (errors name the file as given) and verifies its IR.
    ///
    /// - Throws: `ONNXImportError` for a file that is not a valid model, `IRError` for a model
    ///   whose graph is inconsistent.
    public static func load(_ path: String) throws -> Model {
        let m = try ModelImporter.load(contentsOf: URL(fileURLWithPath: path), displayName: path)
        try Verifier(checks: .all).verify(m)
        return m
    }

    /// Refuses shapes given for names that are not inputs of `model` (read from `file`).
    ///
    /// - Throws: ``SampleInputsError/notAnInput(name:file:inputs:)`` for the first such name.
    public static func checkInputNames(_ names: some Collection<String>, in model: Model, file: String) throws {
        let inputNames = Set(model.graph.inputs.map(\.name))
        for name in names.sorted() where !inputNames.contains(name) {
            throw SampleInputsError.notAnInput(name: name, file: file,
                                               inputs: model.graph.inputs.filter { $0.initializer == nil }.map(\.name))
        }
    }
}

/// A model the interpreter cannot run (a node without a kernel, an input it rejects), named by
/// its file.
public struct ModelRunError: Error, CustomStringConvertible {
    /// The model file.
    public var file: String
    /// The interpreter's message.
    public var reason: String
    /// An error about `file`.
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { "\(file): \(reason)" }
}
