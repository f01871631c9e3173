import PruneIR
import PruneKit

/// What `depth` removes whole: one residual block (`unit=sub-block`), or a layer (`unit=layer`):
/// an attention block and the block after it on the residual chain.
///
/// A layer is a rule of the graph, not of node names: a block whose branch holds a `Softmax` is
/// paired with the next residual block in graph order when that block's skip input is the first
/// block's output (directly, or through nodes that read nothing else but constants: a `Cast`, a
/// post-norm's `LayerNormalization`, decomposed or not) and its own branch holds no `Softmax`.
/// A pre-norm decoder layer (attention, MLP) and a post-norm encoder layer (attention, FFN) pair up;
/// blocks that do not (a UNet's ResBlocks, attention followed by attention) stay units of their own.
struct DepthUnit {
    /// Indices of the unit's residual blocks, in graph order.
    let blocks: [Int]
    /// Parameters removing the unit frees: the sum of its blocks'.
    let params: Int
    /// A readable name: the block's, or the first and last block's joined by `+`.
    let name: String

    init(blocks: [Int], params: Int, name: String) {
        self.blocks = blocks
        self.params = params
        self.name = name
    }

    /// The unit of `blocks`, indices into `all`.
    init(blocks: [Int], of all: [ResidualBlock]) {
        self.init(blocks: blocks, params: blocks.reduce(0) { $0 + all[$1].params }, name: blocks.map { all[$0].name }.joined(separator: "+"))
    }

    /// One unit per block.
    static func subBlocks(_ blocks: [ResidualBlock]) -> [DepthUnit] {
        blocks.indices.map { DepthUnit(blocks: [$0], of: blocks) }
    }

    /// Attention blocks paired with the block after them on the residual chain; the rest alone.
    static func layers(_ blocks: [ResidualBlock]) -> [DepthUnit] {
        let adds = Set(blocks.map { ObjectIdentifier($0.add) })
        var units: [DepthUnit] = []
        var i = 0
        while i < blocks.count {
            let b = blocks[i]
            if i + 1 < blocks.count, hasAttention(b), !hasAttention(blocks[i + 1]),
               let x = blocks[i + 1].add.inputs[blocks[i + 1].skipInput],
               derives(x, onlyFrom: b.add.outputs[0], stoppingAt: adds) {
                units.append(DepthUnit(blocks: [i, i + 1], of: blocks))
                i += 2
            } else {
                units.append(DepthUnit(blocks: [i], of: blocks))
                i += 1
            }
        }
        return units
    }

    /// Whether the block's branch computes attention (holds a `Softmax`).
    static func hasAttention(_ b: ResidualBlock) -> Bool {
        b.branch.contains { $0.opType == .softmax }
    }

    /// Whether `x` is `source`, or computed from `source` and constants only, without passing
    /// through another residual `Add` (one of `adds`).
    static func derives(_ x: Value, onlyFrom source: Value, stoppingAt adds: Set<ObjectIdentifier>) -> Bool {
        if x === source { return true }
        var stack = [x]
        var seen: Set<ObjectIdentifier> = []
        var reached = false
        // A post-norm is a handful of nodes; a walk this long has left the residual chain.
        var budget = 256
        while let v = stack.popLast() {
            if v === source {
                reached = true
                continue
            }
            if v.constantValue != nil { continue }
            guard let p = v.producer, !adds.contains(ObjectIdentifier(p)), p.subgraphs.isEmpty else { return false }
            guard seen.insert(ObjectIdentifier(p)).inserted else { continue }
            budget -= 1
            if budget == 0 { return false }
            for case let input? in p.inputs { stack.append(input) }
        }
        return reached
    }
}
