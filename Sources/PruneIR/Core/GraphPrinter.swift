/// Prints graphs as readable text, one node per line (for `--print-ir-after`, tests and errors).
///
/// ```
/// graph main (%input: float[1,3,32,32]) -> (%logits)
///   init %w: float[16,3,3,3]
///   %y = Conv(%input, %w) {pads=[1,1,1,1]}  // conv1
/// ```
public enum GraphPrinter {
    /// The graph as text, subgraphs indented under their node.
    public static func print(_ graph: Graph, indent: String = "") -> String {
        var out = ""
        let ins = graph.inputs.map(\.description).joined(separator: ", ")
        let outs = graph.outputs.map { "%\($0.name)" }.joined(separator: ", ")
        out += "\(indent)graph \(graph.name) (\(ins)) -> (\(outs))\n"
        for v in graph.initializers where !graph.inputs.contains(where: { $0 === v }) {
            out += "\(indent)  init \(v.description)\n"
        }
        for n in graph.nodes {
            var line = "\(indent)  " + n.description
            let attrs = n.attributes.filter { $0.value.subgraphs.isEmpty }.map { "\($0.name)=\(describe($0.value))" }
            if !attrs.isEmpty {
                if let comment = line.range(of: "  // ") {
                    line.insert(contentsOf: " {\(attrs.joined(separator: ", "))}", at: comment.lowerBound)
                } else {
                    line += " {\(attrs.joined(separator: ", "))}"
                }
            }
            out += line + "\n"
            for (name, a) in n.attributes {
                for g in a.subgraphs {
                    out += "\(indent)    \(name):\n" + print(g, indent: indent + "      ")
                }
            }
        }
        return out
    }

    static func describe(_ a: Attribute) -> String {
        switch a {
        case .float(let f): return "\(f)"
        case .int(let i): return "\(i)"
        case .string(let s): return "\"\(s)\""
        case .floats(let v): return "\(v)"
        case .ints(let v): return "\(v)"
        case .strings(let v): return "\(v)"
        case .tensor(let t): return "tensor<\(t.dtype)\(t.shape)>"
        case .tensors(let ts): return "[\(ts.count) tensors]"
        case .graph: return "graph"
        case .graphs(let gs): return "[\(gs.count) graphs]"
        case .typeProto(let t): return t.map(\.description) ?? "?"
        case .typeProtos(let ts): return "[\(ts.count) types]"
        case .sparseTensor: return "sparse tensor"
        case .sparseTensors(let s): return "[\(s.count) sparse tensors]"
        }
    }
}
