import PruneIR

/// A residual block `out = x + f(x)` whose branch `f` can be skipped: removing it leaves `out = x`.
///
/// The branch is every node that depends on `x` and feeds `f(x)`; it may read other values (an
/// attention mask, shape arithmetic), and its result `f(x)` feeds nothing but the `Add`.
public struct ResidualBlock {
    /// The `Add` joining the skip path and the branch.
    public let add: Node
    /// Which input of ``add`` is the skip path `x` (the other is the branch's result).
    public let skipInput: Int
    /// The branch's nodes, in graph order.
    public let branch: [Node]
    /// Parameters that removing the block frees (read only by the branch and the nodes that only feed it).
    public let params: Int
    /// MACs of the branch and the nodes that only feed it (where shapes are known).
    public let macs: Int
    /// A readable name (the `Add`'s).
    public var name: String { add.name.isEmpty ? add.outputs[0].name : add.name }
    /// The branch's result (the `Add` input that is not the skip path).
    public var branchOutput: Value { add.inputs[1 - skipInput]! }

    /// Removes the block from its graph: the `Add` becomes `Identity(x)` (its output keeps its
    /// name) and the branch's nodes that nothing else reads are deleted.
    ///
    /// - Returns: `false` when the block is already gone (an enclosing block was removed first).
    @discardableResult
    public func remove() throws -> Bool {
        guard let graph = add.graph, add.opType == .add, let skip = add.inputs[skipInput] else { return false }
        add.opType = .identity
        add.setInput(skip, at: 0)
        add.truncateInputs(to: 1)
        try DeadCode.eliminate(in: graph)
        return true
    }

    /// Every skippable residual block of the main graph, in graph order.
    public static func find(in model: Model) -> [ResidualBlock] {
        let graph = model.graph
        var position: [ObjectIdentifier: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { position[ObjectIdentifier(n)] = i }
        var macsOf: [ObjectIdentifier: Int] = [:]
        for c in CostModel().costs(model) { macsOf[ObjectIdentifier(c.node)] = c.macs ?? 0 }
        let outputs = Set(graph.outputs.map(ObjectIdentifier.init))
        var found: [ResidualBlock] = []
        for add in graph.nodes where add.opType == .add && add.inputs.count == 2 {
            guard let a = add.inputs[0], let b = add.inputs[1], a.constantValue == nil, b.constantValue == nil,
                let out = add.outputs.first?.type?.shape, a.type?.shape == out, b.type?.shape == out
            else { continue }
            for skip in [0, 1] {
                let x = skip == 0 ? a : b, y = skip == 0 ? b : a
                guard let branch = branchNodes(from: x, to: y, position: position), !branch.isEmpty else { continue }
                let inBranch = Set(branch.map(ObjectIdentifier.init))
                // Branch nodes that something else also reads (shape arithmetic, say) simply stay
                // when the block goes; only the branch's result must feed nothing but the Add.
                guard y.uses.count == 1, !outputs.contains(ObjectIdentifier(y)), branch.allSatisfy({ $0.subgraphs.isEmpty }) else { continue }
                // What removing the block frees: the branch, plus the nodes that only feed it (a
                // ResBlock's time-embedding projection), and the weights only they read.
                var freed = inBranch
                var frontier = branch
                while let n = frontier.popLast() {
                    for case let v? in n.inputs {
                        guard let p = v.producer, !freed.contains(ObjectIdentifier(p)), p.subgraphs.isEmpty,
                            p.outputs.allSatisfy({ o in !outputs.contains(ObjectIdentifier(o)) && o.uses.allSatisfy { freed.contains(ObjectIdentifier($0.node)) } })
                        else { continue }
                        freed.insert(ObjectIdentifier(p))
                        frontier.append(p)
                    }
                }
                var params = 0, macs = 0
                var seen: Set<ObjectIdentifier> = []
                for n in graph.nodes where freed.contains(ObjectIdentifier(n)) {
                    macs += macsOf[ObjectIdentifier(n)] ?? 0
                    for case let v? in n.inputs where v.initializer != nil && seen.insert(ObjectIdentifier(v)).inserted {
                        if v.uses.allSatisfy({ freed.contains(ObjectIdentifier($0.node)) }) { params += v.initializer?.elementCount ?? 0 }
                    }
                }
                guard params > 0 else { continue }
                found.append(ResidualBlock(add: add, skipInput: skip, branch: branch, params: params, macs: macs))
                break
            }
        }
        return found
    }

    /// The nodes between `x` and `y`: ancestors of `y` that depend on `x`, or `nil` when `y` does
    /// not depend on `x`.
    static func branchNodes(from x: Value, to y: Value, position: [ObjectIdentifier: Int]) -> [Node]? {
        var depends: [ObjectIdentifier: Bool] = [:]
        var branch: [Node] = []
        // Iterative post-order walk over producers (graphs can be deep).
        func dependsOnX(_ root: Node) -> Bool {
            var stack: [(Node, Bool)] = [(root, false)]
            while let (n, expanded) = stack.popLast() {
                let id = ObjectIdentifier(n)
                if depends[id] != nil { continue }
                if expanded {
                    let d = n.inputs.contains { v in
                        guard let v else { return false }
                        if v === x { return true }
                        guard let p = v.producer else { return false }
                        return depends[ObjectIdentifier(p)] ?? false
                    }
                    depends[id] = d
                    if d { branch.append(n) }
                } else {
                    stack.append((n, true))
                    for case let v? in n.inputs where v !== x {
                        if let p = v.producer, depends[ObjectIdentifier(p)] == nil { stack.append((p, false)) }
                    }
                }
            }
            return depends[id(root)] ?? false
        }
        func id(_ n: Node) -> ObjectIdentifier { ObjectIdentifier(n) }
        guard let p = y.producer, dependsOnX(p) else { return nil }
        return branch.sorted { (position[ObjectIdentifier($0)] ?? 0) < (position[ObjectIdentifier($1)] ?? 0) }
    }
}
