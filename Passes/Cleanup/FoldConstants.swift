import PruneIR
import PruneKit
import PruneRuntime

/// `fold-constants`: evaluates nodes whose inputs are all constants (initializers or Constant
/// outputs) on the reference interpreter and replaces their outputs with initializers, so that
/// masks, shape constants and weight arithmetic end up as plain tensors. Random ops, nodes with
/// subgraphs, nodes producing graph outputs, and results larger than `max-bytes` (unless no
/// larger than the inputs that die with the node) are left alone. Run `dce` afterwards to drop what became unused.
public struct FoldConstantsPass: Pass {
    public struct Options: PassOptions {
        @PassOption("max-bytes", .between(0, 1 << 40), help: "largest folded result kept, in bytes (unless no larger than the inputs that die with the node)")
        public var maxBytes = 1 << 20
        public init() {}
    }

    public static let name = "fold-constants"
    public static let summary = "compute nodes whose inputs are all constants and store their results as initializers"

    /// Random ops stay; Constant nodes already are constants.
    static let skipped = Interpreter.nondeterministicOps.union(["Constant"])

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let graph = model.graph
        let outputs = Set(graph.outputs.map(ObjectIdentifier.init))
        let inputs = Set(graph.inputs.map(ObjectIdentifier.init))
        var folded = 0
        for node in graph.nodes {
            guard !FoldConstantsPass.skipped.contains(node.opType.name), node.subgraphs.isEmpty,
                node.inputs.contains(where: { $0 != nil }),
                node.outputs.allSatisfy({ !outputs.contains(ObjectIdentifier($0)) }),
                // An initializer that is also a graph input is a default the caller may override.
                node.inputs.allSatisfy({ $0 == nil || ($0!.constantValue != nil && !inputs.contains(ObjectIdentifier($0!))) })
            else { continue }
            // An Identity of a constant is an alias (exporters write them for tied weights): no copy.
            if node.opType == .identity, let x = node.inputs.first ?? nil {
                node.outputs[0].replaceAllUses(with: x)
                try graph.remove(node)
                folded += 1
                continue
            }
            guard let results = evaluate(node, model: model, threads: context.threads) else { continue }
            // Only inputs that die with the node count: folding a read of a shared table would
            // otherwise add a copy and keep the table.
            let inBytes = node.inputs.reduce(0) { acc, v in
                guard let v, let t = v.constantValue, v.uses.allSatisfy({ $0.node === node }) else { return acc }
                return acc + t.byteCount
            }
            let outBytes = results.reduce(0) { $0 + $1.byteCount }
            guard outBytes <= max(options.maxBytes, inBytes) else { continue }
            for (value, result) in zip(node.outputs, results) {
                var name = value.name + "_folded"
                while graph.value(named: name) != nil { name += "_" }
                let constant = graph.addInitializer(result.tensor(name: name), name: name)
                value.replaceAllUses(with: constant)
            }
            try graph.remove(node)
            folded += 1
        }
        return PassResult(changed: folded > 0, statistics: ["nodes-folded": Double(folded)])
    }

    /// The node's outputs computed on a one-node model, or `nil` when it cannot be evaluated.
    private func evaluate(_ node: Node, model: Model, threads: Int) -> [NDArray]? {
        let b = GraphBuilder(name: "fold")
        let ins: [Value?] = node.inputs.map { v in v.flatMap { $0.constantValue }.map { b.initializer("in", $0) } }
        let outs = b.node(node.opType, ins, attributes: node.attributes.map { ($0.name, $0.value) }, outputs: node.outputs.count)
        b.graph.outputs = outs
        let m = Model(graph: b.graph, irVersion: model.irVersion, opsets: model.opsetImports)
        guard let interpreter = try? Interpreter(model: m, options: .init(threads: threads, profile: false, foldConstants: false)),
            let results = try? interpreter.runOrdered([:])
        else { return nil }
        return results
    }
}
