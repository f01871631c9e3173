import PruneIR
import PruneKit

/// `cleanup`: the tidy-up after pruning, onnxsim style: folds constant subgraphs (shape
/// arithmetic included, see `fold-constants`), bypasses `Identity` nodes (except those that name
/// a graph output) and removes everything left unused (`dce`).
public struct CleanupPass: Pass {
    public static let name = "cleanup"
    public static let summary = "fold constants, bypass Identity nodes and remove dead code"

    public init(options: NoOptions) {}

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        // Shape arithmetic and folds that do not grow the model: a cleanup must not add parameters.
        var fold = FoldConstantsPass.Options()
        fold.maxBytes = 256
        let folded = try FoldConstantsPass(options: fold).run(on: model, context: context)
        let graph = model.graph
        let outputs = Set(graph.outputs.map(ObjectIdentifier.init))
        var bypassed = 0
        for node in graph.nodes where node.opType == .identity && node.inputs.count == 1 {
            guard let x = node.inputs[0], let y = node.outputs.first, !outputs.contains(ObjectIdentifier(y)),
                y.uses.allSatisfy({ $0.node.graph === graph })
            else { continue }
            y.replaceAllUses(with: x)
            bypassed += 1
        }
        let (nodes, initializers) = try DeadCode.eliminate(in: graph)
        var stats = folded.statistics
        stats["identities-bypassed"] = Double(bypassed)
        stats["nodes-removed"] = Double(nodes)
        stats["initializers-removed"] = Double(initializers)
        return PassResult(changed: folded.changed || nodes + initializers > 0, statistics: stats)
    }
}
