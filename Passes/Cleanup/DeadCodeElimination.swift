import PruneIR
import PruneKit

/// `dce`: removes nodes whose outputs nobody reads (in subgraphs too) and initializers no node
/// reads. Graph inputs and outputs are the model's interface and are kept, also an initializer
/// that is a graph input.
public struct DeadCodeEliminationPass: Pass {
    public static let name = "dce"
    public static let summary = "remove nodes whose outputs nobody reads, and unused initializers"

    public init(options: NoOptions) {}

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let (nodes, initializers) = try DeadCode.eliminate(in: model.graph)
        return PassResult(changed: nodes + initializers > 0,
                          statistics: ["nodes-removed": Double(nodes), "initializers-removed": Double(initializers)])
    }
}
