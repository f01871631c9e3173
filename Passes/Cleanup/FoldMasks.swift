import PruneIR
import PruneKit

/// `fold-masks`: turns every gate into physically smaller tensors (see ``MaskFolding``): units
/// whose mask is 0 are cut out of weights, biases, norm parameters and shape constants, gates of
/// ones are deleted, gated-off residual blocks become their skip path, dead nodes go.
public struct FoldMasksPass: Pass {
    public static let name = "fold-masks"
    public static let summary = "slice the weights of gated-off units out of the model and delete the gates"

    public init(options: NoOptions) {}

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let s = try MaskFolding.fold(model)
        var stats: [String: Double] = [
            "groups": Double(s.groups), "gates-removed": Double(s.gatesRemoved), "blocks-removed": Double(s.blocksRemoved),
        ]
        for (k, n) in s.unitsRemoved { stats["\(k)-removed"] = Double(n) }
        return PassResult(changed: s.groups + s.gatesRemoved + s.blocksRemoved > 0, statistics: stats)
    }
}
