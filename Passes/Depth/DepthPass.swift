import Foundation
import PruneIR
import PruneKit
import PruneRuntime

/// `depth`: removes whole residual blocks (Shortened LLaMA, BK-SDM). Every block `x + f(x)` the
/// analysis finds is scored by
/// - `ppl`: perplexity of a causal LM on the calibration token ids with the block skipped,
/// - `taylor`: Taylor+ importance Σ|W ⊙ ∂L/∂W| over the block's weights (L: next-token
///   cross-entropy for a causal LM, else ½·mean(output²)),
/// - `drift`: relative L2 drift of the outputs with the block skipped;
/// the first and last blocks are protected, and the `blocks` least important (or enough to remove
/// `params` of the parameters) are removed from the graph. `preset=bk-sdm` / `bk-sdm-base` pick
/// BK-SDM's units of a diffusers UNet instead of scoring. The pass reports held-out perplexity (or
/// drift) before and after. `criterion=last` and `criterion=random` choose without scoring: the
/// baselines to give `prunec --compare`.
public struct DepthPass: Pass {
    public struct Options: PassOptions {
        /// How a block's importance is measured.
        public enum Criterion: String, PassOptionEnum {
            /// `ppl` for causal LMs, else `drift`.
            case auto
            /// Perplexity with the block skipped (causal LMs).
            case ppl
            /// Taylor+ Σ|W·∂L/∂W|.
            case taylor
            /// Output drift with the block skipped.
            case drift
            /// No score: the last candidate blocks go first (a baseline for `--compare`).
            case last
            /// No score: blocks drawn with the seed (a baseline for `--compare`).
            case random
        }
        /// A fixed choice of blocks instead of scores.
        public enum Preset: String, PassOptionEnum {
            case none
            case bkSDM = "bk-sdm"
            case bkSDMBase = "bk-sdm-base"
        }

        @PassOption("blocks", .between(1, 100_000), help: "number of residual blocks to remove (ignored with params or a preset)")
        public var blocks = 1
        @PassOption("params", .fractionBelowOne, help: "remove blocks until this fraction of the parameters is gone (0 = use blocks)")
        public var params = 0.0
        @PassOption("criterion", help: "block importance: perplexity when skipped (causal LMs), Taylor+ Σ|W·∂L/∂W|, or output drift when skipped; auto = ppl for causal LMs, else drift; last and random are baselines")
        public var criterion: Criterion = .auto
        @PassOption("protect-first", .between(0, 100_000), help: "blocks at the start that are never removed")
        public var protectFirst = 1
        @PassOption("protect-last", .between(0, 100_000), help: "blocks at the end that are never removed")
        public var protectLast = 1
        @PassOption("preset", help: "bk-sdm-base: the last ResBlock+attention unit of every UNet stage that has several; bk-sdm: also the mid block")
        public var preset: Preset = .none
        @PassOption("holdout", .between(0, 1024), help: "calibration samples held out for the reported perplexity or drift (0: report on the scoring samples)")
        public var holdout = 2
        @PassOption("keep-masks", help: "gate the chosen blocks with zero masks instead of removing them (for reconstruct; fold-masks removes them)")
        public var keepMasks = false
        /// How a denoiser is noised for the drift criterion (schedule, σ range, shift).
        public var diffusion = DiffusionOptions()
        public init() {}
    }

    public static let name = "depth"
    public static let summary = "remove whole residual blocks scored by perplexity, Taylor+ or output drift (Shortened LLaMA, BK-SDM)"

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(on model: Model, context: PassContext) throws -> PassResult {
        let started = Date()
        let blocks = ResidualBlock.find(in: model)
        guard !blocks.isEmpty else {
            throw PruningError.nothingToPrune(kinds: [.blocks], blocked: [])
        }
        // Score on a gated copy: every block's branch is multiplied by a scalar gate input.
        let working = model.copy()
        let gates = try TrainableGates(model: working, kinds: [.blocks])
        guard gates.blocks.count == blocks.count else { throw PruningError.nothingToPrune(kinds: [.blocks], blocked: []) }
        let eval = try BlockEvaluator(gates: gates, context: context, holdout: options.holdout, diffusion: options.diffusion)
        let criterion = options.criterion == .auto ? (eval.isCausalLM ? .ppl : .drift) : options.criterion
        if criterion == .ppl && !eval.isCausalLM {
            throw DepthError.notACausalLM(inputs: eval.inputNames)
        }

        let candidates = options.preset == .none
            ? Array(blocks.indices).dropFirst(options.protectFirst).dropLast(options.protectLast).map { $0 }
            : try BKSDM.units(blocks, includeMid: options.preset == .bkSDM)
        var chosen: [Int]
        var scores: [Int: Double] = [:]
        if options.preset != .none {
            chosen = candidates
        } else {
            guard !candidates.isEmpty else {
                throw DepthError.allProtected(blocks: blocks.count, first: options.protectFirst, last: options.protectLast)
            }
            switch criterion {
            case .taylor:
                let t = try TaylorScores.blocks(model, blocks: blocks, calibration: eval.scoring, isCausalLM: eval.isCausalLM, logits: eval.logits, tokens: eval.tokens, context: context)
                for i in candidates { scores[i] = t[i] }
            case .last:
                for i in candidates { scores[i] = -Double(i) }
            case .random:
                var rng = NoiseSource(seed: context.seed ^ 0xDE97)
                for i in candidates { scores[i] = Double(rng.next() % 1_000_000) }
            case .auto, .ppl, .drift:
                for (k, i) in candidates.enumerated() {
                    var skip = [Double](repeating: 1, count: blocks.count)
                    skip[i] = 0
                    scores[i] = try criterion == .ppl ? eval.perplexity(skipping: skip, heldOut: false) : eval.drift(skipping: skip, heldOut: false)
                    context.logger.debug("depth: block \(i) '\(blocks[i].name)' scored \(scores[i]!) (\(k + 1)/\(candidates.count))")
                }
            }
            let order = candidates.sorted { (scores[$0]!, $0) < (scores[$1]!, $1) }
            if options.params > 0 {
                let total = Double(CostModel.parameterCount(model))
                var removed = 0.0
                chosen = []
                for i in order where removed < options.params * total {
                    chosen.append(i)
                    removed += Double(blocks[i].params)
                }
            } else {
                guard options.blocks <= candidates.count else {
                    throw DepthError.tooMany(asked: options.blocks, candidates: candidates.count, blocks: blocks.count)
                }
                chosen = Array(order.prefix(options.blocks))
            }
        }

        // Held-out quality of the choice.
        var stats: [String: Double] = ["blocks-removed": Double(chosen.count), "candidates": Double(candidates.count)]
        let measure: ([Double]) throws -> Double = { skip in
            try eval.isCausalLM ? eval.perplexity(skipping: skip, heldOut: true) : eval.drift(skipping: skip, heldOut: true)
        }
        func skipping(_ set: [Int]) -> [Double] {
            var s = [Double](repeating: 1, count: blocks.count)
            for i in set { s[i] = 0 }
            return s
        }
        let label = eval.isCausalLM ? "ppl" : "drift"
        let before = try measure(skipping([]))
        let after = try measure(skipping(chosen))
        stats["\(label)-before"] = before
        stats["\(label)-after"] = after
        let on = eval.inSample ? "in-sample (holdout=0)" : "held-out"
        let line = "depth: \(on) \(label == "ppl" ? "perplexity" : "output drift") \(fmt(before)) → \(fmt(after)) removing \(chosen.map { blocks[$0].name })"
        context.logger.info("\(line)")

        let paramsBefore = CostModel.parameterCount(model)
        if options.keepMasks {
            for i in chosen { try Masks.set(0, for: blocks[i], in: model) }
        } else {
            for i in chosen.sorted(by: >) { try blocks[i].remove() }
        }
        ShapeInference().run(on: model)
        stats["params-removed"] = Double(paramsBefore - CostModel.parameterCount(model))
        stats["seconds"] = Date().timeIntervalSince(started)
        return PassResult(changed: !chosen.isEmpty, statistics: stats)
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}

/// Why blocks could not be removed.
public enum DepthError: Error, CustomStringConvertible {
    case notACausalLM(inputs: [String])
    case allProtected(blocks: Int, first: Int, last: Int)
    case tooMany(asked: Int, candidates: Int, blocks: Int)
    case noModuleNames
    case noPositions(sets: Int, heldOut: Bool, lengths: [Int], synthesized: Bool)

    public var description: String {
        switch self {
        case .notACausalLM(let ins):
            return "criterion=ppl needs a causal LM (one integer token-id input [batch, seq] and logits [batch, seq, vocab]); inputs: \(ins.joined(separator: ", ")); use criterion=drift or taylor"
        case .allProtected(let n, let f, let l):
            return "all \(n) residual blocks are protected (protect-first=\(f), protect-last=\(l))"
        case .tooMany(let k, let c, let n):
            return "blocks=\(k) but only \(c) of the \(n) residual blocks may be removed (the first and last are protected: see protect-first, protect-last)"
        case .noPositions(let n, let heldOut, let lengths, let synthesized):
            let what = synthesized ? "synthesized" : heldOut ? "held-out" : "scoring"
            let hint = synthesized ? " (without --calib, inputs are synthesized with symbolic dimensions of 1): give calibration token ids with --calib" : ""
            return "criterion=ppl: no position of the \(n) \(what) sample\(n == 1 ? "" : "s") predicts a next token (sequence length\(lengths.count == 1 ? "" : "s") \(lengths.map(String.init).joined(separator: ", ")), target ids must be in 0..<vocab); perplexity needs sequences of at least 2 tokens\(hint)"
        case .noModuleNames:
            return "preset=bk-sdm finds UNet stages by the diffusers module names in node names (down_blocks.N/attentions.K/...), as torch's legacy exporter writes them; this model has none"
        }
    }
}

/// BK-SDM's units of a diffusers UNet, found by module names.
enum BKSDM {
    struct Unit {
        let stage: String
        let kind: String
        let index: Int
    }

    /// A top-level attention (Transformer2D) or ResBlock unit of a stage, from the block's name.
    static func unit(_ b: ResidualBlock) -> Unit? {
        let name = b.name
        guard !name.contains("transformer_blocks"),
            let r = name.range(of: #"(down_blocks\.\d+|up_blocks\.\d+|mid_block)/(attentions|resnets)\.(\d+)/"#, options: .regularExpression)
        else { return nil }
        let parts = name[r].split(separator: "/")
        let unitParts = parts[1].split(separator: ".")
        return Unit(stage: String(parts[0]), kind: String(unitParts[0]), index: Int(unitParts[1]) ?? 0)
    }

    /// Block indices to remove: in every down/up stage with several attention units, the last unit
    /// (and the ResBlock of the same index when it is removable); with `includeMid`, the mid block.
    static func units(_ blocks: [ResidualBlock], includeMid: Bool) throws -> [Int] {
        let units = blocks.map(unit)
        guard units.contains(where: { $0 != nil }) else { throw DepthError.noModuleNames }
        var out: [Int] = []
        let stages = Set(units.compactMap { $0?.stage })
        for stage in stages.sorted() {
            let members = units.indices.filter { units[$0]?.stage == stage }
            if stage == "mid_block" {
                if includeMid { out += members }
                continue
            }
            let attentions = members.filter { units[$0]?.kind == "attentions" }
            guard attentions.count >= 2, let last = attentions.max(by: { units[$0]!.index < units[$1]!.index }) else { continue }
            out.append(last)
            out += members.filter { units[$0]?.kind == "resnets" && units[$0]?.index == units[last]?.index }
        }
        return out.sorted()
    }
}
