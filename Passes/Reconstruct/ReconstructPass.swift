import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `reconstruct`: after a scoring pass has set masks, re-fits the layers that read the pruned
/// units so that their outputs match the unpruned model's on the calibration data.
///
/// For every `MatMul`/`Gemm` whose input features a group slices and that has a zero mask, in
/// graph order, it collects the layer's input as the masked model computes it (earlier layers
/// already pruned and re-fitted) and its output as the unmasked model computes it, then solves a
/// ridge least-squares problem for the layer's weights and bias (`mode=full`), or shifts only the
/// bias by the mean error (`mode=bias`, the choice for `Conv`, always). Pruned features are zero in
/// the input, so their rows keep their weights and `fold-masks` removes them as before; the model's
/// structure does not change.
///
/// Skipped residual blocks (zero block gates) are absorbed: the last `MatMul` of the kept block
/// before a run of skipped ones is re-fitted so that the residual stream after the run matches the
/// unmasked model's (see `BlockAbsorption`).
///
/// Run it between the scoring pass and `fold-masks`:
/// `--pass 'ld-pruner{sparsity=0.2}' --pass reconstruct --pass fold-masks`.
public struct ReconstructPass: Pass {
    public struct Options: PassOptions {
        /// What is re-fitted.
        public enum Mode: String, PassOptionEnum { case full, bias }
        @PassOption("mode", help: "full: ridge least squares of the weights and bias; bias: bias compensation only")
        public var mode: Mode = .full
        @PassOption("damp", .between(1e-12, 1e6), help: "ridge weight, as a fraction of the mean diagonal of XᵀX (larger stays closer to the old weights)")
        public var damp = 0.1
        @PassOption("samples", .between(0, 1_000_000), help: "calibration samples to fit on (0 = all; each row of a batch is one)")
        public var samples = 0
        @PassOption("sequential", help: "later layers are fitted on the inputs earlier fits give them (the model walked once, layer by layer)")
        public var sequential = true
        @PassOption("max-features", .between(1, 1 << 20), help: "layers with more input features than this get bias compensation only")
        public var maxFeatures = 8192
        public init() {}
    }

    public static let name = "reconstruct"
    /// Layers are fitted to calibration activations.
    public static let requirements: PassRequirements = [.calibration]
    public static let summary = "re-fit the layers that read pruned units (least squares on calibration data) to match the unpruned model"

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        guard !context.calibration.isEmpty else {
            throw PruningError.invalid("reconstruct needs calibration data: pass --calib DATA (the layers are fitted to its activations)")
        }
        let groups = PruningGroups.analyze(model).groups.filter { $0.maskValues?.contains(0) == true }
        let consumers = ConsumerLayer.find(in: model, groups: groups)
        let (absorptions, unmatched) = BlockAbsorption.find(in: model)
        if !unmatched.isEmpty {
            context.logger.info("reconstruct: cannot absorb skipped blocks \(unmatched.joined(separator: "; "))")
        }
        guard !consumers.isEmpty || !absorptions.isEmpty else {
            context.logger.info("reconstruct: no masked unit is read by a MatMul, Gemm or Conv and no skipped block can be absorbed; nothing to fit (run a scoring pass first)")
            return .unchanged
        }
        let sets = options.samples > 0 ? Array(context.calibration.prefix(options.samples)) : context.calibration
        let names = NameScope(model.graph)
        // The targets come from the unmasked model as it is now, walked alongside the masked one
        // (only the current layer's target is held, not every layer's for every sample); the
        // fallback runs of the whole model read them from this copy.
        let unmasked = try ActivationProbe.unmasked(model)
        var current = try options.sequential ? [] : ActivationProbe(model: model, values: consumers.flatMap { [$0.input.name, $0.target.name] })
            .run(sets, threads: context.threads)
        // Forward passes over the calibration data: the unmasked model walked for the targets, the
        // masked one run once (not sequential) or walked for the inputs (or, if a walk cannot go
        // on, run once per layer from there).
        var passes = options.sequential ? 0.0 : 1.0
        var sweep = consumers.isEmpty
            ? nil : walk(model, refitting: consumers.filter { $0.layout != .conv }.map { ($0.node, $0.bias) }, sets: sets, context: context)
        var before = 0.0, after = 0.0, fitted = 0, biasOnly = 0
        let start = Date()
        for (i, c) in consumers.enumerated() {
            if options.sequential {
                // A conv is fitted on its output (a bias shift), the others on their input.
                current = try activations([c.layout == .conv ? c.target.name : c.input.name], walk: &sweep, model: model,
                                          sets: sets, passes: &passes, context: context)
            }
            let reference = try activations([c.target.name], reference: unmasked, walk: &sweep, model: model, sets: sets,
                                            passes: &passes, context: context)
            let full = options.mode == .full && c.layout != .conv && c.weight.shape[c.layout == .rows ? 0 : 1] <= options.maxFeatures
            let r = try fit(c, full: full, reference: reference, current: current, graph: model.graph, names: names, threads: context.threads)
            update(&sweep, passes: &passes, context: context) { walk in
                if c.layout != .conv { try walk.applyRefit(of: (c.node, c.bias)) }
                else if let shift = r.deltaB { try walk.applyShift(shift, to: c.target.name, current: current) }
            }
            // The walk has passed this layer: its weights' mapped pages need not stay resident.
            MappedWeights.releaseResidentPages()
            before += r.errorBefore
            after += r.errorAfter
            fitted += 1
            if !full { biasOnly += 1 }
            context.progress(PassProgress(
                pass: Self.name, step: i + 1, total: consumers.count, elapsed: Date().timeIntervalSince(start),
                detail: "\(c.node.name.isEmpty ? c.target.name : c.node.name) (\(full ? "weights+bias" : "bias")): "
                    + "relative error \(String(format: "%.4f → %.4f", r.errorBefore, r.errorAfter))"))
        }
        passes += sweep?.forwardPasses ?? 0
        sweep = nil
        // The absorptions, in graph order, see every fit above: a second walk, and one of the
        // unmasked model as it was before them for the streams they restore.
        var absorbing = absorptions.isEmpty ? nil : walk(model, refitting: absorptions.map { ($0.node, $0.bias) }, sets: sets, context: context)
        var streams = absorptions.isEmpty ? nil : walk(unmasked, refitting: [], sets: sets, context: context)
        for (i, a) in absorptions.enumerated() {
            let cur = try activations([a.node.inputs[0]!.name, a.skip.name], walk: &absorbing, model: model, sets: sets,
                                      passes: &passes, context: context)
            let reference = try activations([a.stream.name], walk: &streams, model: unmasked, sets: sets, passes: &passes, context: context)
            let r = try absorb(a, reference: reference, current: cur, graph: model.graph, names: names, threads: context.threads)
            update(&absorbing, passes: &passes, context: context) { try $0.applyRefit(of: (a.node, a.bias)) }
            // The walk has passed this layer: its weights' mapped pages need not stay resident.
            MappedWeights.releaseResidentPages()
            before += r.errorBefore
            after += r.errorAfter
            fitted += 1
            context.progress(PassProgress(
                pass: "\(Self.name) blocks", step: i + 1, total: absorptions.count, elapsed: Date().timeIntervalSince(start),
                detail: "\(a.node.name) absorbs \(a.skipped.joined(separator: ", ")): "
                    + "relative error \(String(format: "%.4f → %.4f", r.errorBefore, r.errorAfter))"))
        }
        passes += (absorbing?.forwardPasses ?? 0) + (streams?.forwardPasses ?? 0)
        context.logger.info("reconstruct: \(fitted) layer\(fitted == 1 ? "" : "s") re-fitted in \(String(format: "%.2f", passes)) forward passes over the calibration data")
        return PassResult(changed: true, statistics: [
            "blocks-absorbed": Double(absorptions.reduce(0) { $0 + $1.skipped.count }),
            "layers-refit": Double(fitted), "layers-bias-only": Double(biasOnly),
            "mean-error-before": before / Double(max(fitted, 1)), "mean-error-after": after / Double(max(fitted, 1)),
            "calibration-sets": Double(sets.count), "forward-passes": passes,
        ])
    }

    /// A walk of `model` with the constants of `refitting` replaceable, or nil (the log says why;
    /// the layers then run the whole model each) when one cannot be set up.
    private func walk(_ model: Model, refitting: [LayerSweep.Site], sets: [[String: NDArray]], context: PassContext) -> LayerSweep? {
        do {
            return try LayerSweep(model: model, refitted: refitting, sets: sets, threads: context.threads)
        } catch {
            context.logger.info("reconstruct: \(error); running the whole model for each layer")
            return nil
        }
    }

    /// `wanted` for every sample, in `model` or, given `reference` (the unmasked model at the
    /// start), in the reference: from the walk, or, when there is none or it cannot go on (the log
    /// says why, and the walk ends), from a run of the whole model. `passes` counts what it cost.
    private func activations(_ wanted: [String], reference: Model? = nil, walk: inout LayerSweep?, model: Model,
                             sets: [[String: NDArray]], passes: inout Double, context: PassContext) throws -> [[String: NDArray]] {
        if let w = walk {
            do {
                return try w.values(wanted, reference: reference != nil)
            } catch {
                context.logger.info("reconstruct: \(error); running the whole model for each layer from here")
                passes += w.forwardPasses
                walk = nil
            }
        }
        passes += 1
        return try ActivationProbe(model: reference ?? model, values: wanted).run(sets, threads: context.threads)
    }

    /// Puts a fit into the walk; if it cannot take it (the log says why), the walk ends and later
    /// layers run the whole model.
    private func update(_ walk: inout LayerSweep?, passes: inout Double, context: PassContext, _ body: (LayerSweep) throws -> Void) {
        guard let w = walk else { return }
        do {
            try body(w)
        } catch {
            context.logger.info("reconstruct: \(error); running the whole model for each layer from here")
            passes += w.forwardPasses
            walk = nil
        }
    }

    /// Fits one consumer and writes its new constants.
    private func fit(_ c: ConsumerLayer, full: Bool, reference: [[String: NDArray]], current: [[String: NDArray]], graph: Graph,
                     names: NameScope, threads: Int) throws -> LeastSquaresFit.Result {
        let target = c.target.name
        if c.layout == .conv {
            return try fitConvBias(c, reference: reference, current: current, graph: graph, names: names)
        }
        let w = c.weight
        let (k, n) = c.layout == .rows ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
        var x: [Double] = [], y: [Double] = []
        // Sized once: growing by doubling would hold two copies of the largest array at the end.
        let rowCount = current.reduce(0) { $0 + ($1[c.input.name]?.count ?? 0) / max(k, 1) }
        x.reserveCapacity(rowCount * k)
        y.reserveCapacity(rowCount * n)
        for (ref, cur) in zip(reference, current) {
            guard let xi = cur[c.input.name], let yi = ref[target], xi.shape.last == k, yi.shape.last == n,
                  xi.count / k == yi.count / n else {
                throw PruningError.invalid("reconstruct: '\(c.node.name)' reads \(cur[c.input.name]?.shape ?? []) and writes "
                                           + "\(ref[target]?.shape ?? []), not [rows, \(k)] → [rows, \(n)]")
            }
            x += xi.doubles()
            y += yi.doubles()
        }
        return try refit(c.node, transposed: c.layout == .transposed, bias: c.bias, x: x, y: y, k: k, n: n, full: full,
                         graph: graph, names: names, threads: threads)
    }

    /// Fits L of a ``BlockAbsorption`` so that L′(a) ≈ S − x_p.
    private func absorb(_ a: BlockAbsorption, reference: [[String: NDArray]], current: [[String: NDArray]], graph: Graph,
                        names: NameScope, threads: Int) throws -> LeastSquaresFit.Result {
        let w = a.node.inputs[1]!.constantValue!
        let (k, n) = (w.shape[0], w.shape[1])
        var x: [Double] = [], y: [Double] = []
        // Sized once: growing by doubling would hold two copies of the largest array at the end.
        let rowCount = current.reduce(0) { $0 + ($1[a.node.inputs[0]!.name]?.count ?? 0) / max(k, 1) }
        x.reserveCapacity(rowCount * k)
        y.reserveCapacity(rowCount * n)
        for (ref, cur) in zip(reference, current) {
            guard let xi = cur[a.node.inputs[0]!.name], let s = ref[a.stream.name], let skip = cur[a.skip.name],
                  xi.shape.last == k, s.shape == skip.shape, s.shape.last == n, xi.count / k == s.count / n else {
                throw PruningError.invalid("reconstruct: cannot absorb \(a.skipped.joined(separator: ", ")) into '\(a.node.name)': shapes do not line up")
            }
            x += xi.doubles()
            y += zip(s.doubles(), skip.doubles()).map { $0 - $1 }
        }
        return try refit(a.node, transposed: false, bias: a.bias, x: x, y: y, k: k, n: n, full: true, graph: graph, names: names, threads: threads)
    }

    /// Solves for the weight (input 1 of `node`; [K, N], or [N, K] when `transposed`) and the bias
    /// on rows `x` (R×K) → `y` (R×N): ridge least squares when `full` (bias compensation when that
    /// is off or fails), and writes the new constants only when the fit lowers the error on its rows.
    private func refit(_ node: Node, transposed: Bool, bias biasSite: (node: Node, input: Int)?, x: [Double], y: [Double],
                       k: Int, n: Int, full: Bool, graph: Graph, names: NameScope, threads: Int) throws -> LeastSquaresFit.Result {
        let w = node.inputs[1]!.constantValue!
        var wRows = try w.floats().map(Double.init)
        if transposed { wRows = transpose(wRows, rows: n, cols: k) }
        let bias = try biasSite.map { try $0.node.inputs[$0.input]!.constantValue!.floats().map(Double.init) }
        let problem = LeastSquaresFit(x: x, y: y, rows: x.count / k, k: k, n: n, threads: threads)
        let result: LeastSquaresFit.Result
        if full, let r = problem.fitFull(w: wRows, b: bias, damp: options.damp) {
            result = r
        } else if let bias {
            result = problem.fitBias(w: wRows, b: bias)
        } else {
            return problem.fitBias(w: wRows, b: [Double](repeating: 0, count: n)).withoutChange
        }
        if result.errorAfter >= result.errorBefore { return result.withoutChange }
        if result.deltaW.contains(where: { $0 != 0 }) {
            var newW = zip(wRows, result.deltaW).map { $0 + $1 }
            if transposed { newW = transpose(newW, rows: k, cols: n) }
            ConsumerLayer.write(newW.map(Float.init), shape: w.shape, to: node, input: 1, in: graph, names: names)
        }
        if let (biasNode, input) = biasSite, let db = result.deltaB, let b = bias {
            let shape = biasNode.inputs[input]!.constantValue!.shape
            ConsumerLayer.write(zip(b, db).map { Float($0 + $1) }, shape: shape, to: biasNode, input: input, in: graph, names: names)
        }
        return result
    }

    /// A `Conv`: its bias moves by the mean error per output channel (a bias is added when it has none).
    private func fitConvBias(_ c: ConsumerLayer, reference: [[String: NDArray]], current: [[String: NDArray]], graph: Graph,
                             names: NameScope) throws -> LeastSquaresFit.Result {
        let channels = c.weight.shape[0]
        var sum = [Double](repeating: 0, count: channels), count = 0
        var errBefore = 0.0, norm = 0.0
        var perSet: [([Double], [Double], Int)] = []
        for (ref, cur) in zip(reference, current) {
            guard let yr = ref[c.target.name], let yc = cur[c.target.name], yr.shape == yc.shape, yr.rank >= 2,
                  yr.shape[1] == channels else { continue }
            let a = yr.doubles(), b = yc.doubles()
            let inner = yr.shape.dropFirst(2).reduce(1, *)
            for i in a.indices {
                let ch = (i / inner) % channels
                sum[ch] += a[i] - b[i]
                errBefore += (a[i] - b[i]) * (a[i] - b[i])
                norm += a[i] * a[i]
            }
            count += yr.count / channels
            perSet.append((a, b, inner))
        }
        guard count > 0 else { return .init(deltaW: [], deltaB: nil, errorBefore: 0, errorAfter: 0) }
        let shift = sum.map { $0 / Double(count) }
        var errAfter = 0.0
        for (a, b, inner) in perSet {
            for i in a.indices {
                let d = a[i] - b[i] - shift[(i / inner) % channels]
                errAfter += d * d
            }
        }
        let scale = max(norm.squareRoot(), 1e-30)
        if let (node, input) = c.bias {
            let old = try node.inputs[input]!.constantValue!.floats()
            ConsumerLayer.write(zip(old, shift).map { $0 + Float($1) }, shape: [channels], to: node, input: input, in: graph, names: names)
        } else {
            let t = Tensor(name: names.fresh(c.node.name + ".bias"), floats: shift.map(Float.init), shape: [channels])
            let v = graph.addInitializer(t, name: t.name)
            // The unmasked model has no bias here: its reference is zero.
            Masks.keepReference(Tensor(name: t.name, floats: [Float](repeating: 0, count: channels), shape: [channels]), for: t.name, in: graph)
            while c.node.inputs.count < 2 { c.node.appendInput(nil) }
            c.node.appendInput(v)
        }
        return .init(deltaW: [], deltaB: shift, errorBefore: errBefore.squareRoot() / scale, errorAfter: errAfter.squareRoot() / scale)
    }

    private func transpose(_ m: [Double], rows: Int, cols: Int) -> [Double] {
        var t = [Double](repeating: 0, count: m.count)
        for r in 0 ..< rows { for c in 0 ..< cols { t[c * rows + r] = m[r * cols + c] } }
        return t
    }
}

extension LeastSquaresFit.Result {
    /// The same errors, recorded as unchanged (the fit did not help on its own rows, or there was
    /// nothing to move).
    var withoutChange: Self { .init(deltaW: deltaW, deltaB: nil, errorBefore: errorBefore, errorAfter: errorBefore) }
}
