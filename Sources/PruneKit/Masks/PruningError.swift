import PruneIR

/// Errors a pruning pass raises about the model (not about its options).
public enum PruningError: Error, CustomStringConvertible {
    /// No group of the requested kinds can be pruned.
    case nothingToPrune(kinds: Set<GroupKind>, blocked: [(name: String, reason: String)])
    /// The model or its data cannot be used as the pass needs; the message names what.
    case invalid(String)

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
        }
    }
}
