/// Checks the IR's invariants after import and after every pass (debug builds, `--verify-each`).
///
/// ```swift
/// try Verifier(checks: .all).verify(model)
/// ```
public struct Verifier {
    /// Which invariants to check.
    public struct Checks: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// Every value name is defined once per scope.
        public static let ssa = Checks(rawValue: 1 << 0)
        /// Every node reads only values defined before it (or in enclosing graphs).
        public static let topologicalOrder = Checks(rawValue: 1 << 1)
        /// Use lists match node inputs in both directions; producers and owners are consistent.
        public static let useLists = Checks(rawValue: 1 << 2)
        /// Graph inputs and outputs have types; initializer types match their tensors.
        public static let types = Checks(rawValue: 1 << 3)

        /// Everything.
        public static let all: Checks = [.ssa, .topologicalOrder, .useLists, .types]
    }

    /// The checks this verifier runs.
    public var checks: Checks

    public init(checks: Checks = .all) { self.checks = checks }

    /// Verifies a model's main graph and its subgraphs.
    ///
    /// - Throws: ``IRError/verificationFailed(_:)`` listing every finding.
    public func verify(_ model: Model) throws {
        let findings = self.findings(model.graph)
        if !findings.isEmpty { throw IRError.verificationFailed(findings) }
    }

    /// The findings for a graph, empty when it is valid.
    public func findings(_ graph: Graph) -> [String] {
        var out: [String] = []
        verify(graph, outer: [], isMain: true, into: &out)
        return out
    }

    private func verify(_ graph: Graph, outer: [Set<ObjectIdentifier>], isMain: Bool, into out: inout [String]) {
        var defined = Set<ObjectIdentifier>()
        var names: [String: String] = [:]
        let scope = "graph '\(graph.name)'"

        func define(_ v: Value, _ what: String) {
            defined.insert(ObjectIdentifier(v))
            guard checks.contains(.ssa), !v.name.isEmpty else { return }
            if let first = names[v.name] {
                out.append("\(scope): value '\(v.name)' is defined by \(first) and by \(what)")
            } else {
                names[v.name] = what
            }
        }
        for v in graph.inputs {
            define(v, "graph input")
            if checks.contains(.types) && isMain && v.type == nil && v.initializer == nil {
                out.append("\(scope): graph input '\(v.name)' has no type")
            }
        }
        for v in graph.initializers where !graph.inputs.contains(where: { $0 === v }) {
            define(v, "initializer")
        }
        for v in graph.initializers {
            if checks.contains(.types), let t = v.initializer, let ty = v.type, ty.elementType != t.dtype {
                out.append("\(scope): initializer '\(v.name)' is typed \(ty) but holds \(t.dtype) data")
            }
        }
        func staleUses(of v: Value) {
            guard checks.contains(.useLists) else { return }
            for u in v.useList where !u.node.inputs.indices.contains(u.inputIndex) || u.node.inputs[u.inputIndex] !== v {
                out.append("\(scope): value '\(v.name)' lists a stale use by node \(u.node.displayName)")
            }
        }
        let visible = outer.reduce(into: Set<ObjectIdentifier>()) { $0.formUnion($1) }
        for n in graph.nodes {
            if checks.contains(.useLists) && n.graph !== graph {
                out.append("\(scope): node \(n.displayName) does not point back to its graph")
            }
            for (i, input) in n.inputs.enumerated() {
                guard let v = input else { continue }
                let id = ObjectIdentifier(v)
                if checks.contains(.topologicalOrder) && !defined.contains(id) && !visible.contains(id) {
                    out.append("\(scope): node \(n.displayName) reads '\(v.name)' before it is defined")
                }
                if checks.contains(.useLists) && !v.useList.contains(where: { $0.node === n && $0.inputIndex == i }) {
                    out.append("\(scope): value '\(v.name)' does not list node \(n.displayName) input \(i) as a use")
                }
            }
            for g in n.subgraphs {
                verify(g, outer: [defined] + outer, isMain: false, into: &out)
            }
            for (i, o) in n.outputs.enumerated() {
                if checks.contains(.useLists) && (o.producer !== n || o.outputIndex != i) {
                    out.append("\(scope): output \(i) '\(o.name)' of node \(n.displayName) has a wrong producer")
                }
                if !o.name.isEmpty { define(o, "node \(n.displayName)") }
                staleUses(of: o)
            }
        }
        for v in graph.inputs + graph.initializers { staleUses(of: v) }
        for v in graph.outputs {
            let id = ObjectIdentifier(v)
            if checks.contains(.topologicalOrder) && !defined.contains(id) && !visible.contains(id) {
                out.append("\(scope): graph output '\(v.name)' is not defined")
            }
        }
    }
}
