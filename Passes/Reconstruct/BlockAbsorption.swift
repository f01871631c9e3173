import PruneIR
import PruneKit

/// A run of skipped residual blocks (zero block gates, as `depth{keep-masks=true}` or
/// `magnitude{kinds=blocks}` leave them) and the last linear layer of the kept block before them,
/// which takes over what the run used to add to the residual stream.
///
/// With p the kept block, x_p its skip input and L its branch's last `MatMul` (+ bias), the
/// stream after the run was S = x_p + L(a) + Σ removed branches; it becomes x_p + L′(a). The fit
/// makes L′(a) match S − x_p on the calibration data: the linear part of the removed blocks, as
/// seen from L's input, moves into L.
struct BlockAbsorption {
    /// L, a `MatMul` with a constant [K, N] weight.
    let node: Node
    /// L's bias: the constant input of the `Add` after it.
    let bias: (node: Node, input: Int)?
    /// L's output (after the bias).
    let output: Value
    /// x_p, the kept block's skip input.
    let skip: Value
    /// The stream after the last skipped block of the run (its `Add` output).
    let stream: Value
    /// The skipped blocks' names.
    let skipped: [String]

    static func isZeroGated(_ b: ResidualBlock) -> Bool {
        guard let p = b.branchOutput.producer, p.opType == .mul, p.inputs.count == 2, let m = p.inputs[1], Masks.isMask(m),
              let v = try? m.initializer?.floats() else { return false }
        return v.allSatisfy { $0 == 0 }
    }

    /// The absorptions of `model`'s zero-gated blocks, in graph order.
    static func find(in model: Model) -> (found: [BlockAbsorption], unmatched: [String]) {
        let blocks = ResidualBlock.find(in: model)
        let byOutput = Dictionary(blocks.map { (ObjectIdentifier($0.add.outputs[0]), $0) }, uniquingKeysWith: { a, _ in a })
        var found: [BlockAbsorption] = [], unmatched: [String] = []
        var handled = Set<ObjectIdentifier>()
        // Walk back from the last block of each run to the kept block before it.
        for b in blocks.reversed() where isZeroGated(b) && !handled.contains(ObjectIdentifier(b.add)) {
            var run = [b]
            var v = b.add.inputs[b.skipInput]
            var kept: ResidualBlock?
            // Exporters put a `Cast` to the same type on the stream (RMSNorm's `.to(float32)`).
            func through(_ v: Value?) -> Value? {
                var v = v
                while let p = v?.producer, p.opType == .cast || p.opType == .identity, p.inputs.count == 1,
                      p.inputs[0]?.type?.elementType == v?.type?.elementType {
                    v = p.inputs[0]
                }
                return v
            }
            v = through(v)
            while let value = v, let prev = byOutput[ObjectIdentifier(value)] {
                if isZeroGated(prev) {
                    run.append(prev)
                    v = through(prev.add.inputs[prev.skipInput])
                } else {
                    kept = prev
                    break
                }
            }
            for r in run { handled.insert(ObjectIdentifier(r.add)) }
            guard let p = kept, let skip = p.add.inputs[p.skipInput], let layer = lastLinear(p) else {
                let why = kept.map { "the branch of '\($0.name)' ends in \($0.branchOutput.producer?.opType.name ?? "no node"), not MatMul" }
                    ?? "no kept block before them"
                unmatched.append("\(run.map(\.name).joined(separator: ", ")) (\(why))")
                continue
            }
            found.append(BlockAbsorption(node: layer.node, bias: layer.bias, output: layer.output, skip: skip,
                                         stream: b.add.outputs[0], skipped: run.reversed().map(\.name)))
        }
        return (found.reversed(), unmatched)
    }

    /// The branch's last layer when the branch ends `MatMul(a, W) [+ b] [· gate of ones]`.
    private static func lastLinear(_ p: ResidualBlock) -> (node: Node, bias: (node: Node, input: Int)?, output: Value)? {
        var v = p.branchOutput
        if let g = v.producer, g.opType == .mul, let m = g.inputs[1], Masks.isMask(m), let x = g.inputs[0] { v = x }
        // v is the MatMul's output, or the output of the Add that follows it with its bias.
        let matMul = v.producer?.opType == .add
            ? v.producer?.inputs.compactMap { $0?.producer }.first { $0.opType == .matMul }
            : v.producer
        guard let mm = matMul, mm.opType == .matMul, let w = mm.inputs[1]?.constantValue, w.dtype == .float, w.shape.count == 2
        else { return nil }
        let bias = ConsumerLayer.biasAdd(after: mm)
        // An Add that is not this MatMul's bias (a second branch, a computed term) is not a last layer.
        guard bias?.node.outputs[0] === v || (bias == nil && mm.outputs[0] === v), mm.outputs[0].uses.count == 1 else { return nil }
        return (mm, bias, v)
    }
}
