import Foundation
import PruneIR
import PruneRuntime

/// Reads intermediate values of a model on calibration data: a copy of the model lists the wanted
/// values as extra graph outputs, and the interpreter runs it once per input set.
///
/// Passes that fit weights to activations (``reconstruct``, a Wanda-style score) use it:
///
/// ```swift
/// let probe = try ActivationProbe(model: model, values: ["/encoder/layer.0/output/dense/MatMul_output_0"])
/// let acts = try probe.run(context.calibration, threads: context.threads)   // acts[set][name]
/// ```
public struct ActivationProbe {
    /// The copy that outputs the probed values after the model's own outputs.
    public let model: Model
    /// The probed value names, in the order given.
    public let values: [String]

    /// Makes the probing copy of `model`.
    ///
    /// - Parameters:
    ///   - model: The model; it is not changed.
    ///   - values: Names of values of the main graph (node outputs, inputs or initializers).
    ///   - edit: Changes applied to the copy before it runs (e.g. setting masks to ones).
    /// - Throws: ``PruningError`` naming a value the graph does not have.
    public init(model: Model, values: [String], edit: ((Model) throws -> Void)? = nil) throws {
        let copy = model.copy()
        try edit?(copy)
        let outputs = Set(copy.graph.outputs.map(\.name))
        for name in values where !outputs.contains(name) {
            guard let v = copy.graph.value(named: name) else {
                throw PruningError.invalid("activation probe: the graph has no value '\(name)'")
            }
            copy.graph.outputs.append(v)
        }
        self.model = copy
        self.values = values
    }

    /// Runs every input set and returns, per set, the probed values by name.
    ///
    /// - Throws: `RuntimeError` from the interpreter.
    public func run(_ sets: [[String: NDArray]], threads: Int) throws -> [[String: NDArray]] {
        var out: [[String: NDArray]] = []
        try forEach(sets, threads: threads) { _, values in out.append(values) }
        return out
    }

    /// Runs every input set and hands each set's probed values to `body` (index, values by name)
    /// without keeping them: for statistics over many sets. One interpreter serves all sets.
    ///
    /// - Throws: `RuntimeError` from the interpreter; what `body` throws.
    public func forEach(_ sets: [[String: NDArray]], threads: Int, _ body: (Int, [String: NDArray]) throws -> Void) throws {
        let interpreter = try Interpreter(model: model, options: Interpreter.Options(threads: threads, profile: false))
        let wanted = Set(values)
        for (i, feeds) in sets.enumerated() {
            try body(i, try interpreter.run(feeds).filter { wanted.contains($0.key) })
        }
    }

    /// A copy of `model` whose masks (``Masks``) are all ones and whose re-fitted initializers hold
    /// their recorded references (``Masks/keepReference(_:for:in:)``): the model the masks were
    /// set on.
    ///
    /// - Throws: Nothing today (``Model/copy()`` cannot fail); kept so callers need not change.
    public static func unmasked(_ model: Model) throws -> Model {
        let copy = model.copy()
        setMasksToOne(copy)
        Masks.restoreReferences(in: copy.graph)
        return copy
    }

    /// Sets every mask initializer of `model` to ones (an edit for ``init(model:values:edit:)``).
    public static func setMasksToOne(_ model: Model) {
        for v in model.graph.initializers where Masks.isMask(v) {
            guard let ones = v.initializer.flatMap(Masks.ones(like:)) else { continue }
            model.graph.setInitializer(v, to: ones)
        }
    }
}
