import Foundation

extension Model {
    /// A deep copy of the model that shares nothing mutable with the original.
    ///
    /// Every ``Graph``, ``Node`` and ``Value`` is new; producers, output indices, use lists (in the
    /// same order), outer-scope uses of subgraphs, `value_info` entries and initializers are rebuilt
    /// between the new objects. Tensors are value types, so initializers share their storage
    /// (a slice of a memory-mapped file stays a slice) until one side writes to it. The protos kept
    /// for a lossless round trip, the opsets, functions, metadata and ``sourceURL`` are copied too,
    /// so exporting the copy gives the same bytes as exporting the original.
    ///
    /// Uses by nodes that belong to no graph of the model (a node built and never inserted) are
    /// not carried over.
    public func copy() -> Model {
        var copier = ModelCopier()
        let g = copier.copyStructure(graph)
        copier.wire(graph)
        copier.copyUseLists()
        let m = Model(graph: g, importing: proto)
        m.sourceURL = sourceURL
        return m
    }
}

/// Copies a graph tree in two steps: first every graph, node and defined value (so outer-scope
/// values exist before a subgraph reads them, and an unsorted graph still resolves), then the
/// inputs, outputs, `value_info` lists and use lists between the new objects.
private struct ModelCopier {
    private var graphs: [ObjectIdentifier: Graph] = [:]
    private var nodes: [ObjectIdentifier: Node] = [:]
    private var values: [ObjectIdentifier: Value] = [:]
    /// Every (original, copy) value pair, in the order they were made.
    private var valuePairs: [(old: Value, new: Value)] = []

    /// Makes the graph, its nodes, inputs, initializers and node outputs, and those of its subgraphs.
    mutating func copyStructure(_ old: Graph) -> Graph {
        let g = Graph(importing: old.proto)
        graphs[ObjectIdentifier(old)] = g
        g.inputs = old.inputs.map { value($0) }
        g.initializers = old.initializers.map { value($0) }
        var made: [(old: Node, new: Node)] = []
        for n in old.nodes {
            let c = Node(importing: n.proto)
            c.opType = n.opType
            c.importedAttributes = n.importedAttributes
            c.changedAttributes = n.changedAttributes
            c.graph = g
            nodes[ObjectIdentifier(n)] = c
            for o in n.outputs {
                let v = makeValue(o)
                c.addOutput(v)
            }
            made.append((n, c))
        }
        g.nodes = made.map(\.new)
        // Subgraphs after every value of this graph exists: they may read any of them.
        for (n, c) in made {
            c.attributes = n.attributes.map { (name: $0.name, value: copyAttribute($0.value)) }
            for sub in c.subgraphs { sub.parentNode = c }
        }
        return g
    }

    /// Sets node inputs, graph outputs and `value_info` lists, in this graph and its subgraphs.
    mutating func wire(_ old: Graph) {
        guard let g = graphs[ObjectIdentifier(old)] else { return }
        for n in old.nodes {
            guard let c = nodes[ObjectIdentifier(n)] else { continue }
            c.inputs = n.inputs.map { $0.map { value($0) } }
            for sub in n.subgraphs { wire(sub) }
        }
        g.outputs = old.outputs.map { value($0) }
        g.valueInfos = old.valueInfos.map { value($0) }
    }

    /// Rebuilds each value's use list from the original's, in the same order.
    func copyUseLists() {
        for (old, new) in valuePairs {
            new.useList = old.useList.compactMap { u in
                nodes[u.nodeID].map { Use(node: $0, inputIndex: u.inputIndex) }
            }
        }
    }

    private mutating func copyAttribute(_ a: Attribute) -> Attribute {
        switch a {
        case .graph(let g): return .graph(copyStructure(g))
        case .graphs(let gs): return .graphs(gs.map { copyStructure($0) })
        default: return a
        }
    }

    /// The copy of a value, made on first sight. Values reached only here (sparse initializers,
    /// detached `value_info` entries) are made like any other.
    private mutating func value(_ old: Value) -> Value {
        if let v = values[ObjectIdentifier(old)] { return v }
        return makeValue(old)
    }

    /// A new value with the original's fields; its producer is set by `Node.addOutput`.
    private mutating func makeValue(_ old: Value) -> Value {
        let v = Value(name: old.name, type: old.type)
        v.typeChanged = old.typeChanged
        v.isDetachedInfo = old.isDetachedInfo
        v.importedInfo = old.importedInfo
        v.initializer = old.initializer
        v.owningGraph = old.owningGraph.flatMap { graphs[ObjectIdentifier($0)] }
        values[ObjectIdentifier(old)] = v
        valuePairs.append((old, v))
        return v
    }
}
