import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `reconstruct`'s sequential walk in one pass over the calibration data: one ``SteppedRun`` per
/// calibration sample, all advanced together to each layer in graph order.
///
/// A layer's weights are re-fitted on its input as the masked model (earlier layers already
/// re-fitted) computes it. Running the whole model again per layer gives that input at the cost of
/// layers × model, quadratic in depth; here each sample's run stops at the layer's input, the layer
/// is fitted, and its new weights (and bias) replace the old ones in the run before any step reads
/// them. A `Conv`, fitted on its output by a bias shift, has the shift added to the output it
/// already computed. The whole walk runs each step once per sample.
///
/// The runs are of a copy of the model in which each re-fitted weight and bias is a graph input of
/// its own (a constant that other nodes read too is duplicated for the re-fitted node, as the
/// write to the model does), so replacing it changes that layer alone.
final class LayerSweep {
    private let sweeps: [SteppedRun]
    /// The same samples with every mask fed as ones: the model the masks were set on, with the
    /// weights it had when the walk began (a refit replaces weights in `sweeps` only).
    private let references: [SteppedRun]
    /// The walked copy's names of the weight and bias of each refitted node (by the model's node).
    private let weightNames: [ObjectIdentifier: (weight: String, bias: String?)]

    /// A node whose weight (input 1) and bias (an input of `bias.node`) a fit re-writes.
    typealias Site = (node: Node, bias: (node: Node, input: Int)?)

    /// Walks `model` on `sets`, with the weights and biases of `refitted` replaceable, and, in
    /// step, the same model with its masks at one. One interpreter serves both: the masks are graph
    /// inputs of the walked copy, fed ones in the reference runs.
    init(model: Model, refitted: [Site], sets: [[String: NDArray]], threads: Int) throws {
        let copy = model.copy()
        let scope = NameScope(copy.graph)
        // The copy has the same nodes in the same order.
        var index: [ObjectIdentifier: Int] = [:]
        for (i, n) in model.graph.nodes.enumerated() { index[ObjectIdentifier(n)] = i }
        // Each re-fitted constant becomes a graph input of the copy (so no step is folded from it),
        // its own for the node that reads it: a constant shared with other readers is duplicated.
        func own(_ node: Node, _ input: Int) throws -> String {
            guard let i = index[ObjectIdentifier(node)], let v = copy.graph.nodes[i].inputs[input], let t = v.constantValue else {
                throw PruningError.invalid("reconstruct: '\(node.name)' input \(input) is not a constant")
            }
            var mine = v
            // A Constant node's output cannot be an input: it gets an initializer of its own too.
            if v.initializer == nil || v.uses.count != 1 || copy.graph.inputs.contains(where: { $0 === v })
                || copy.graph.outputs.contains(where: { $0 === v }) {
                let name = scope.fresh(v.name + ".refit")
                var u = t
                u.name = name
                mine = copy.graph.addInitializer(u, name: name)
                copy.graph.nodes[i].setInput(mine, at: input)
            }
            copy.graph.addInput(mine)
            feedReference(mine, as: v.name)
            return mine.name
        }
        // Constants re-fitted by an earlier pass hold, in the reference runs, the tensors they had
        // when the masks were set (``Masks/keepReference(_:for:in:)``): inputs of the copy too.
        let recorded = Masks.references(in: copy.graph)
        var referenceFeeds: [String: NDArray] = [:]
        func feedReference(_ value: Value, as original: String) {
            guard let t = recorded[original], let now = value.constantValue, now.shape == t.shape, now.dtype == t.dtype,
                  let a = try? NDArray(tensor: t) else { return }
            referenceFeeds[value.name] = a
        }
        var names: [ObjectIdentifier: (weight: String, bias: String?)] = [:]
        for site in refitted {
            let weight = try own(site.node, 1)
            let bias = try site.bias.map { try own($0.node, $0.input) }
            names[ObjectIdentifier(site.node)] = (weight, bias)
        }
        for v in copy.graph.initializers where recorded[v.name] != nil && referenceFeeds[v.name] == nil {
            copy.graph.addInput(v)
            feedReference(v, as: v.name)
        }
        var ones: [String: NDArray] = [:]
        for v in copy.graph.initializers where Masks.isMask(v) {
            guard let t = v.initializer.flatMap(Masks.ones(like:)), let one = try? NDArray(tensor: t) else { continue }
            if !copy.graph.inputs.contains(where: { $0 === v }) { copy.graph.addInput(v) }
            ones[v.name] = one
        }
        // Attention fused (its scores never whole), every other value readable.
        let interpreter = try Interpreter(model: copy, options: .init(threads: threads, profile: false, fusions: .attention))
        sweeps = try sets.map { try SteppedRun(interpreter: interpreter, inputs: $0) }
        references = try sets.map { try SteppedRun(interpreter: interpreter, inputs: $0.merging(ones) { $1 }.merging(referenceFeeds) { $1 }) }
        weightNames = names
    }

    /// Per sample, the values named `names` in the masked model (`reference` false, the walk with
    /// every fit so far) or with the masks at one, running each sample's steps up to them.
    func values(_ names: [String], reference: Bool = false) throws -> [[String: NDArray]] {
        try (reference ? references : sweeps).map { sweep in
            var out: [String: NDArray] = [:]
            for name in names { out[name] = try sweep.value(named: name) }
            return out
        }
    }

    /// Puts the weight and bias that a fit wrote to `site`'s node in the model into the runs.
    func applyRefit(of site: Site) throws {
        guard let (weight, bias) = weightNames[ObjectIdentifier(site.node)] else { return }
        let w = try NDArray(tensor: site.node.inputs[1]!.constantValue!)
        let b = try site.bias.map { try NDArray(tensor: $0.node.inputs[$0.input]!.constantValue!) }
        for sweep in sweeps {
            try sweep.replace(weight, with: w)
            if let bias, let b { try sweep.replace(bias, with: b) }
        }
    }

    /// Adds a conv's bias shift to its output `target`, which the runs computed already (the
    /// samples' values in `current`).
    func applyShift(_ shift: [Double], to target: String, current: [[String: NDArray]]) throws {
        for (sweep, cur) in zip(sweeps, current) {
            guard let y = cur[target] else { continue }
            try sweep.replace(target, with: LayerSweep.adding(shift, alongAxis1Of: y))
        }
    }

    /// Steps run so far in both walks, in whole runs of the model (the samples advance together).
    var forwardPasses: Double {
        guard let s = sweeps.first, let r = references.first, s.stepCount > 0 else { return 0 }
        return Double(s.position + r.position) / Double(s.stepCount)
    }

    /// `y` (float, [n, channels, ...]) plus `shift[channel]`.
    private static func adding(_ shift: [Double], alongAxis1Of y: NDArray) throws -> NDArray {
        guard y.dtype == .float, y.rank >= 2, y.shape[1] == shift.count else {
            throw PruningError.invalid("a \(y.dtype) \(y.shape) conv output takes no per-channel shift here")
        }
        let inner = y.shape.dropFirst(2).reduce(1, *), channels = y.shape[1]
        let v = y.doubles().enumerated().map { i, x in Float(x + shift[(i / inner) % channels]) }
        return NDArray(v, shape: y.shape)
    }
}
