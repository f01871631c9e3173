import PruneIR

/// Errors from building or running an ``Interpreter``.
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    /// Nodes the interpreter has no kernel for (all of them, found before anything runs).
    case unsupportedNodes([UnsupportedNode])
    /// An element type the runtime cannot hold.
    case unsupportedType(what: String, dtype: DType)
    /// A kernel found its inputs or attributes invalid while running.
    case kernel(node: String, op: String, reason: String)
    /// A user-provided input does not match the model.
    case input(String)
    /// Malformed tensor data.
    case invalidData(String)

    /// One node the interpreter cannot run, and why.
    public struct UnsupportedNode: Equatable, Sendable {
        /// The node's name (or `op#index` when unnamed).
        public var node: String
        /// `domain::Op` or `Op`.
        public var op: String
        /// The model's opset for the node's domain.
        public var opset: Int
        /// Why it cannot run.
        public var reason: String
    }

    public var description: String {
        switch self {
        case .unsupportedNodes(let nodes):
            let ops = Set(nodes.map(\.op)).sorted()
            var s = "the interpreter cannot run \(nodes.count) node\(nodes.count == 1 ? "" : "s") (ops: \(ops.joined(separator: ", ")))"
            for n in nodes.prefix(20) { s += "\n  node \(n.node): \(n.op) (opset \(n.opset)): \(n.reason)" }
            if nodes.count > 20 { s += "\n  ... and \(nodes.count - 20) more" }
            return s
        case .unsupportedType(let what, let dtype): return "\(what): element type \(dtype) is not supported by the interpreter"
        case .kernel(let node, let op, let reason): return "node \(node) (\(op)): \(reason)"
        case .input(let s): return s
        case .invalidData(let s): return s
        }
    }
}

/// Thrown by kernels (at build or run time); the interpreter adds the node's name and op.
public struct KernelError: Error, CustomStringConvertible {
    /// What is wrong.
    public var reason: String
    /// Whether this means "not supported" (reported with unsupported nodes) rather than "invalid".
    public var unsupported: Bool

    /// An invalid input or attribute.
    public init(_ reason: String) {
        self.reason = reason
        self.unsupported = false
    }

    /// A case the kernel does not implement (an attribute value, an element type).
    public static func unsupported(_ reason: String) -> KernelError {
        var e = KernelError(reason)
        e.unsupported = true
        return e
    }

    public var description: String { reason }
}
