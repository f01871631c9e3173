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
/// the first and last units are protected, and the `blocks` least important (or those whose
/// parameters come closest to `params` of all, ranked by cost per parameter) are removed from the
/// graph. A unit is one block (`unit=sub-block`) or a layer (`unit=layer`: an attention block with
/// the block after it on the residual chain, see ``DepthUnit``). `search=greedy` chooses one unit
/// a round, re-scoring a shortlist with the chosen units skipped (see ``UnitSearch``). `preset=bk-sdm` / `bk-sdm-base` pick
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
        /// What is removed whole.
        public enum Unit: String, PassOptionEnum {
            /// Each residual block alone (a decoder layer's attention, its MLP).
            case subBlock = "sub-block"
            /// An attention block together with the block after it on the residual chain.
            case layer
        }
        /// How the units are chosen from their scores.
        public enum Search: String, PassOptionEnum {
            /// Each unit scored alone; the cheapest taken.
            case oneShot = "one-shot"
            /// One unit a round, re-scoring with the chosen ones skipped.
            case greedy
        }
        /// A fixed choice of blocks instead of scores.
        public enum Preset: String, PassOptionEnum {
            case none
            case bkSDM = "bk-sdm"
            case bkSDMBase = "bk-sdm-base"
        }

        @PassOption("blocks", .between(1, 100_000), help: "number of units (residual blocks, or layers with unit=layer) to remove (ignored with params or a preset)")
        public var blocks = 1
        @PassOption("params", .fractionBelowOne, help: "remove units until the removed parameters are closest to this fraction of all (0 = use blocks); units are then ranked by cost per parameter")
        public var params = 0.0
        @PassOption("unit", help: "what is removed whole: sub-block (each residual block), or layer (an attention block, one whose branch holds a Softmax, with the next block on the residual chain when that one has none; other blocks stay alone)")
        public var unit: Unit = .subBlock
        @PassOption("search", help: "one-shot: score each unit alone and take the cheapest; greedy: one unit a round, re-scoring the candidates with the chosen ones skipped (ppl or drift)")
        public var search: Search = .oneShot
        @PassOption("shortlist", .between(1, 100_000), help: "with search=greedy, how many candidates rounds after the first re-score (those with the best costs so far; the first round scores all)")
        public var shortlist = 10
        @PassOption("criterion", help: "block importance: perplexity when skipped (causal LMs), Taylor+ Σ|W·∂L/∂W|, or output drift when skipped; auto = ppl for causal LMs, else drift; last and random are baselines")
        public var criterion: Criterion = .auto
        @PassOption("protect-first", .between(0, 100_000), help: "units at the start that are never removed")
        public var protectFirst = 1
        @PassOption("protect-last", .between(0, 100_000), help: "units at the end that are never removed")
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

        public func validate() throws {
            if preset != .none {
                if unit != .subBlock { throw OptionError(key: "unit", message: "does not apply to preset=\(preset.rawValue), which picks its own blocks") }
                if search != .oneShot { throw OptionError(key: "search", message: "does not apply to preset=\(preset.rawValue), which picks its own blocks") }
            }
            if search == .greedy && [.taylor, .last, .random].contains(criterion) {
                throw OptionError(key: "search", message: "is greedy, which re-scores the model with the chosen units skipped, and criterion=\(criterion.rawValue) does not measure that: use criterion=ppl, drift or auto")
            }
        }
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
        if criterion == .ppl { eval.joinSets() }

        let units = options.preset != .none || options.unit == .subBlock ? DepthUnit.subBlocks(blocks) : DepthUnit.layers(blocks)
        if options.unit == .layer {
            context.logger.info("depth: \(units.count) units of \(blocks.count) residual blocks (\(units.filter { $0.blocks.count == 2 }.count) attention blocks paired with the block after them)")
        }
        let candidates = options.preset == .none
            ? Array(units.indices).dropFirst(options.protectFirst).dropLast(options.protectLast).map { $0 }
            : try BKSDM.units(blocks, includeMid: options.preset == .bkSDM)
        var chosen: [Int]
        if options.preset != .none {
            chosen = candidates
        } else {
            guard !candidates.isEmpty else {
                throw DepthError.allProtected(blocks: units.count, first: options.protectFirst, last: options.protectLast, layers: options.unit == .layer)
            }
            let target: UnitSearch.Target
            if options.params > 0 {
                target = .params(options.params * Double(CostModel.parameterCount(model)))
            } else {
                guard options.blocks <= candidates.count else {
                    throw DepthError.tooMany(asked: options.blocks, candidates: candidates.count, blocks: units.count, layers: options.unit == .layer)
                }
                target = .units(options.blocks)
            }
            let measured = criterion == .ppl || criterion == .drift
            var search = UnitSearch(units: units, candidates: candidates, blockCount: blocks.count, target: target,
                                    logScale: criterion == .ppl, perParameter: criterion != .last && criterion != .random,
                                    context: context) { skip in
                try criterion == .ppl ? eval.perplexity(skipping: skip, heldOut: false) : eval.drift(skipping: skip, heldOut: false)
            }
            if options.search == .greedy {
                search.rebase = { try eval.rebase(skipping: $0) }
                chosen = try search.greedy(shortlist: options.shortlist)
            } else {
                var scores: [Int: Double] = [:]
                var reference = 0.0
                switch criterion {
                case .taylor:
                    let t = try TaylorScores.blocks(model, blocks: blocks, calibration: eval.scoring, isCausalLM: eval.isCausalLM, logits: eval.logits, tokens: eval.tokens, context: context)
                    for u in candidates { scores[u] = units[u].blocks.reduce(0) { $0 + t[$1] } }
                case .last:
                    for u in candidates { scores[u] = -Double(u) }
                case .random:
                    var rng = NoiseSource(seed: context.seed ^ 0xDE97)
                    for u in candidates { scores[u] = Double(rng.next() % 1_000_000) }
                case .auto, .ppl, .drift:
                    reference = try search.measure(search.skipping([]))
                    scores = try search.scoreAlone()
                }
                chosen = search.oneShot(scores: scores, reference: measured ? reference : 0, harms: measured)
            }
        }
        let chosenUnits = chosen
        chosen = chosen.flatMap { units[$0].blocks }.sorted()

        // Held-out quality of the choice.
        var stats: [String: Double] = ["blocks-removed": Double(chosen.count), "units-removed": Double(chosenUnits.count),
                                       "candidates": Double(candidates.count)]
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
        stats["forward-passes"] = eval.forwardPasses
        context.logger.info("depth: \(String(format: "%.1f", eval.forwardPasses)) forward-pass equivalents (recorded runs, and the steps below each skipped block rerun)")
        return PassResult(changed: !chosen.isEmpty, statistics: stats)
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}

/// Why blocks could not be removed.
public enum DepthError: Error, CustomStringConvertible {
    case notACausalLM(inputs: [String])
    case allProtected(blocks: Int, first: Int, last: Int, layers: Bool)
    case tooMany(asked: Int, candidates: Int, blocks: Int, layers: Bool)
    case noModuleNames
    case noPositions(sets: Int, heldOut: Bool, lengths: [Int], synthesized: Bool)

    public var description: String {
        switch self {
        case .notACausalLM(let ins):
            return "criterion=ppl needs a causal LM (one integer token-id input [batch, seq] and logits [batch, seq, vocab]); inputs: \(ins.joined(separator: ", ")); use criterion=drift or taylor"
        case .allProtected(let n, let f, let l, let layers):
            return "all \(n) \(layers ? "units (unit=layer)" : "residual blocks") are protected (protect-first=\(f), protect-last=\(l))"
        case .tooMany(let k, let c, let n, let layers):
            let what = layers ? "units (unit=layer)" : "residual blocks"
            return "blocks=\(k) but only \(c) of the \(n) \(what) may be removed (the first and last are protected: see protect-first, protect-last)"
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
