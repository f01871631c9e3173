import PruneIR

/// Errors a pruning pass raises about the model (not about its options).
public enum PruningError: Error, CustomStringConvertible {
    /// No group of the requested kinds can be pruned.
    case nothingToPrune(kinds: Set<GroupKind>, blocked: [(name: String, reason: String)])
    /// The model or its data cannot be used as the pass needs; the message names what.
    case invalid(String)
    /// Training stopped making sense: a loss or parameter became NaN or infinite.
    case diverged(pass: String, step: Int, what: String, hint: String)

    /// Throws ``diverged(pass:step:what:hint:)`` when any of `values` is NaN or infinite: a
    /// training loop checks its loss (and what it trains) every step, so a learning rate or a
    /// regularizer weight that is finite but too large stops with a message, not a crash or garbage.
    public static func checkFinite(_ values: some Sequence<Double>, pass: String, step: Int, what: String, hint: String) throws {
        for v in values where !v.isFinite {
            throw PruningError.diverged(pass: pass, step: step, what: "\(what) is \(v)", hint: hint)
        }
    }

    public var description: String {
        switch self {
        case .nothingToPrune(let kinds, let blocked):
            let k = kinds.map(\.rawValue).sorted().joined(separator: "+")
            var s = "the model has no prunable group of kinds \(k)"
            if let first = blocked.first {
                s += " (\(blocked.count) group\(blocked.count == 1 ? " is" : "s are") blocked; e.g. '\(first.name)': \(first.reason))"
            }
            return s + "; `prunec inspect --groups` lists them"
        case .invalid(let message):
            return message
        case .diverged(let pass, let step, let what, let hint):
            return "\(pass) diverged at step \(step): \(what); \(hint)"
        }
    }
}
