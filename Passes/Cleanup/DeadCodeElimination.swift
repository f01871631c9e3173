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
        let (nodes, initializers) = try eliminate(in: model.graph)
        return PassResult(changed: nodes + initializers > 0,
                          statistics: ["nodes-removed": Double(nodes), "initializers-removed": Double(initializers)])
    }

    private func eliminate(in graph: Graph) throws -> (nodes: Int, initializers: Int) {
        var nodes = 0, initializers = 0
        let outputs = Set(graph.outputs.map(ObjectIdentifier.init))
        // Reverse order: removing a consumer first frees its producers in the same sweep.
        for node in graph.nodes.reversed() {
            let dead = node.outputs.allSatisfy { !$0.hasUses && !outputs.contains(ObjectIdentifier($0)) }
            if dead {
                try graph.remove(node)
                nodes += 1
            } else {
                for g in node.subgraphs {
                    let inner = try eliminate(in: g)
                    nodes += inner.nodes
                    initializers += inner.initializers
                }
            }
        }
        let inputs = Set(graph.inputs.map(ObjectIdentifier.init))
        for v in graph.initializers where !v.hasUses && !outputs.contains(ObjectIdentifier(v)) && !inputs.contains(ObjectIdentifier(v)) {
            try graph.removeInitializer(v)
            initializers += 1
        }
        return (nodes, initializers)
    }
}
