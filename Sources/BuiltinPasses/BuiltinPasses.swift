import AutoBotPasses
import CleanupPasses
import DepthPasses
import DistillPasses
import EcoDiffPasses
import FluctuationPasses
import LDPrunerPasses
import MagnitudePasses
import PruneKit
import ReconstructPasses

/// The passes that ship with prunec (one line per pass). The one target that depends on every
/// pass family, so that PruneKit and the families stay independent of each other.
public enum BuiltinPasses {
    /// A registry of every built-in pass (plugins add theirs to a copy).
    public static var registry: PassRegistry {
        var r = PassRegistry()
        r.register(DeadCodeEliminationPass.self)
        r.register(FoldConstantsPass.self)
        r.register(FoldMasksPass.self)
        r.register(CleanupPass.self)
        r.register(MagnitudePass.self)
        r.register(EcoDiffPass.self)
        r.register(DepthPass.self)
        r.register(LDPrunerPass.self)
        r.register(AutoBotPass.self)
        r.register(ReconstructPass.self)
        r.register(FluctuationPass.self)
        r.register(DistillPass.self)
        return r
    }
}
