import PruneIR

/// Removal of what nothing reads; shared by the `dce` pass and by passes that leave dead nodes
/// behind (mask folding, block removal).
public enum DeadCode {
    /// Removes nodes whose outputs nobody reads (in subgraphs too) and initializers no node reads.
    /// Graph inputs and outputs are the model's interface and are kept, also an initializer that
    /// is a graph input.
    ///
    /// - Returns: How many nodes and initializers went.
    @discardableResult
    public static func eliminate(in graph: Graph) throws -> (nodes: Int, initializers: Int) {
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
