import PruneIR

/// Fresh value and node names for a graph: `base`, else `base.1`, `base.2`, ...
public final class NameScope {
    private var taken: Set<String>

    /// The names used in `graph` (inputs, initializers, node outputs and node names) and its subgraphs.
    public init(_ graph: Graph) {
        var names: Set<String> = []
        func collect(_ g: Graph) {
            for v in g.inputs { names.insert(v.name) }
            for v in g.initializers { names.insert(v.name) }
            for n in g.nodes {
                names.insert(n.name)
                for o in n.outputs { names.insert(o.name) }
                for s in n.subgraphs { collect(s) }
            }
        }
        collect(graph)
        taken = names
    }

    /// A name not used yet, reserved from now on.
    public func fresh(_ base: String) -> String {
        var name = base
        var i = 1
        while taken.contains(name) || name.isEmpty {
            name = "\(base).\(i)"
            i += 1
        }
        taken.insert(name)
        return name
    }
}
