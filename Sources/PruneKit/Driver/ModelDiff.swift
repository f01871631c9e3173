import Foundation
import PruneIR

/// What `prunec diff A B` reports: the MAC-bearing layers of two models side by side, and totals.
///
/// JSON (sorted keys): `a`, `b` (the files), `layers` (per layer: `name`, `op`, `status` =
/// `unchanged` | `changed` | `removed` | `added`, `a` and `b` = `{weight_shape, params, macs}` or
/// null, `params_reduction`, `macs_reduction`), `totals` (`params`, `macs`, `nodes`, `file_bytes`,
/// each `{a, b, reduction}`). Reductions are fractions, `(a − b) / a`; negative when B grew.
public struct ModelDiff: Encodable {
    /// One model's view of a layer.
    public struct Side: Codable, Sendable {
        @NullEncodable public var weightShape: [Int]?
        public var params: Int
        @NullEncodable public var macs: Int?

        enum CodingKeys: String, CodingKey {
            case params, macs
            case weightShape = "weight_shape"
        }

        public func same(as other: Side) -> Bool {
            weightShape == other.weightShape && params == other.params && macs == other.macs
        }
    }

    /// One layer, matched by name across the two models.
    public struct Layer: Encodable {
        public var name: String
        public var op: String
        public var status: String
        @NullEncodable public var a: Side?
        @NullEncodable public var b: Side?
        @NullEncodable public var paramsReduction: Double?
        @NullEncodable public var macsReduction: Double?

        enum CodingKeys: String, CodingKey {
            case name, op, status, a, b
            case paramsReduction = "params_reduction"
            case macsReduction = "macs_reduction"
        }
    }

    /// A count in both models.
    public struct Total: Encodable {
        @NullEncodable public var a: Int?
        @NullEncodable public var b: Int?
        @NullEncodable public var reduction: Double?

        public init(_ a: Int?, _ b: Int?) {
            self.a = a
            self.b = b
            self.reduction = ModelDiff.reduction(a, b)
        }
    }

    public struct Totals: Encodable {
        public var params: Total
        public var macs: Total
        public var nodes: Total
        public var fileBytes: Total

        enum CodingKeys: String, CodingKey {
            case params, macs, nodes
            case fileBytes = "file_bytes"
        }
    }

    public var a: String
    public var b: String
    public var layers: [Layer]
    public var totals: Totals

    /// Loads the models at `fileA` and `fileB`, binds `shapes` (input name → dims) in both, and
    /// compares them: what `prunec diff` reports.
    ///
    /// - Throws: import errors naming the file, ``SampleInputsError/notAnInput(name:file:inputs:)``
    ///   for a shape that names no input of either model.
    public static func compare(_ fileA: String, _ fileB: String, shapes: [String: Shape] = [:]) throws -> ModelDiff {
        let modelA = try ModelFile.load(fileA)
        let modelB = try ModelFile.load(fileB)
        try ModelFile.checkInputNames(shapes.keys, in: modelA, file: fileA)
        try ModelFile.checkInputNames(shapes.keys, in: modelB, file: fileB)
        ShapeInference(overrides: shapes).run(on: modelA)
        ShapeInference(overrides: shapes).run(on: modelB)
        return ModelDiff(modelA, file: fileA, modelB, file: fileB)
    }

    /// Compares `modelA` (read from `fileA`) with `modelB`. Run shape inference on both first:
    /// MACs come from the value types.
    public init(_ modelA: Model, file fileA: String, _ modelB: Model, file fileB: String) {
        a = fileA
        b = fileB
        let layersA = Self.collectLayers(of: modelA)
        let layersB = Self.collectLayers(of: modelB)
        let byKeyB = Dictionary(layersB.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        var out: [Layer] = []
        for l in layersA {
            if let other = byKeyB[l.key] {
                let changed = !l.side.same(as: other.side) || l.op != other.op
                out.append(Layer(name: l.key, op: l.op == other.op ? l.op : "\(l.op) → \(other.op)",
                                 status: changed ? "changed" : "unchanged", a: l.side, b: other.side,
                                 paramsReduction: Self.reduction(l.side.params, other.side.params),
                                 macsReduction: Self.reduction(l.side.macs, other.side.macs)))
            } else {
                out.append(Layer(name: l.key, op: l.op, status: "removed", a: l.side, b: nil, paramsReduction: 1, macsReduction: 1))
            }
        }
        let keysA = Set(layersA.map(\.key))
        for l in layersB where !keysA.contains(l.key) {
            out.append(Layer(name: l.key, op: l.op, status: "added", a: nil, b: l.side, paramsReduction: nil, macsReduction: nil))
        }
        layers = out
        totals = Totals(
            params: Total(CostModel.parameterCount(modelA), CostModel.parameterCount(modelB)),
            macs: Total(CostModel().totalMACs(modelA), CostModel().totalMACs(modelB)),
            nodes: Total(modelA.graph.allNodes.count, modelB.graph.allNodes.count),
            fileBytes: Total(Self.fileBytes(modelA, file: fileA), Self.fileBytes(modelB, file: fileB)))
    }

    /// `(a − b) / a`; `nil` when either is unknown or `a` is 0 (0 when both are).
    public static func reduction(_ a: Int?, _ b: Int?) -> Double? {
        guard let a, let b else { return nil }
        if a == 0 { return b == 0 ? 0 : nil }
        return Double(a - b) / Double(a)
    }

    private struct LayerInfo {
        public var key: String
        public var op: String
        public var side: Side
    }

    /// The MAC-bearing nodes of `model`, each with the key that matches it in the other model:
    /// its name, else its weight initializer's name, else `Op#k` (the k-th such unnamed node).
    private static func collectLayers(of model: Model) -> [LayerInfo] {
        var out: [LayerInfo] = []
        var used: [String: Int] = [:]
        var anonymous: [String: Int] = [:]
        for cost in CostModel().costs(model) where CostModel.macBearingOps.contains(cost.node.opType) {
            let node = cost.node
            let op = node.opType.description
            let weight = weightInput(of: node)
            var key: String
            if !node.name.isEmpty {
                key = node.name
            } else if let w = weight, !w.name.isEmpty {
                key = w.name
            } else {
                anonymous[op, default: 0] += 1
                key = "\(op)#\(anonymous[op] ?? 0)"
            }
            // Duplicate names (invalid but seen) stay distinct: the second is `name#2`.
            used[key, default: 0] += 1
            if let n = used[key], n > 1 { key += "#\(n)" }
            out.append(LayerInfo(key: key, op: op, side: Side(weightShape: weight?.constantValue?.shape, params: cost.params, macs: cost.macs)))
        }
        return out
    }

    /// The weight: input 1 of Conv, ConvTranspose and Gemm; the first constant input of MatMul and Einsum.
    private static func weightInput(of node: Node) -> Value? {
        switch node.opType {
        case .conv, .convTranspose, .gemm:
            guard node.inputs.count > 1, let w = node.inputs[1], w.constantValue != nil else { return nil }
            return w
        default:
            return node.inputs.lazy.compactMap { $0 }.first { $0.constantValue != nil }
        }
    }

    /// Bytes on disk: the model file plus the external data files its tensors name.
    public static func fileBytes(_ model: Model, file: String) -> Int? {
        func size(_ path: String) -> Int? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
        }
        guard var total = size(file) else { return nil }
        var locations = Set<String>()
        func collect(_ g: Graph) {
            for v in g.initializers { if let loc = v.initializer?.external?.location { locations.insert(loc) } }
            for n in g.nodes { n.subgraphs.forEach(collect) }
        }
        collect(model.graph)
        let dir = URL(fileURLWithPath: file).deletingLastPathComponent()
        for loc in locations.sorted() { total += size(dir.appendingPathComponent(loc).path) ?? 0 }
        return total
    }

    /// One JSON object with sorted keys.
    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    /// The human-readable tables.
    public func text() -> String {
        func shape(_ s: Side?) -> String {
            guard let s else { return "—" }
            return s.weightShape.map { "[" + $0.map(String.init).joined(separator: ",") + "]" } ?? "-"
        }
        func count(_ n: Int?) -> String { n.map(TextTable.grouped) ?? "?" }
        func percent(_ r: Double?) -> String { r.map { String(format: "%.1f%%", 100 * $0) } ?? "?" }
        var out = "A  \(a)\nB  \(b)\n\n"
        let rows = layers.map { l -> [String] in
            let reduction: String
            switch l.status {
            case "removed", "added": reduction = l.status
            default: reduction = percent(l.macsReduction ?? l.paramsReduction)
            }
            return [l.name, l.op, "\(shape(l.a)) → \(shape(l.b))",
                    "\(l.a.map { count($0.params) } ?? "—") → \(l.b.map { count($0.params) } ?? "—")",
                    "\(l.a.map { count($0.macs) } ?? "—") → \(l.b.map { count($0.macs) } ?? "—")",
                    reduction]
        }
        if rows.isEmpty {
            out += "no MAC-bearing layers (Conv, ConvTranspose, MatMul, Gemm, Einsum) in either model\n"
        } else {
            out += TextTable.table(["layer", "op", "weight A → B", "params A → B", "MACs A → B", "reduction"], rows, rightAligned: [5])
        }
        out += "\n"
        func total(_ label: String, _ t: Total, _ format: (Int?) -> String) -> [String] {
            [label, format(t.a), format(t.b), percent(t.reduction)]
        }
        out += TextTable.table(
            ["total", "A", "B", "reduction"],
            [total("params", totals.params, count), total("MACs", totals.macs, count), total("nodes", totals.nodes, count),
             total("file size", totals.fileBytes) { $0.map(Format.bytes) ?? "?" }],
            rightAligned: [1, 2, 3])
        let counts = layers.reduce(into: [String: Int]()) { $0[$1.status, default: 0] += 1 }
        out += "\n\(layers.count) layers: " + ["changed", "unchanged", "removed", "added"].map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: ", ") + "\n"
        if totals.macs.a == nil || totals.macs.b == nil {
            out += "MACs are unknown where shapes are dynamic: bind the inputs with --shape NAME=DIMS\n"
        }
        return out
    }
}
