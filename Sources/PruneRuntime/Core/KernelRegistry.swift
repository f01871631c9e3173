import PruneIR

/// Kernels by (domain, op type, since-version).
///
/// ``kernel(domain:op:opset:)`` picks the registration with the largest since-version not above
/// the model's opset, as ONNX resolves operator versions: a kernel registered `since: 13` serves
/// opsets 13 up to the next registration of the same op.
public struct KernelRegistry {
    struct Key: Hashable {
        var domain: String
        var op: String
    }

    private var entries: [Key: [(since: Int, factory: KernelFactory)]] = [:]

    /// An empty registry.
    public init() {}

    /// The kernels this package ships.
    public static let standard: KernelRegistry = {
        var r = KernelRegistry()
        registerStandardKernels(&r)
        return r
    }()

    static func normalize(_ domain: String) -> String { domain == "ai.onnx" ? "" : domain }

    /// Registers `factory` for `op` in `domain` from opset `since` on.
    public mutating func register(_ op: String, domain: String = "", since: Int, _ factory: @escaping KernelFactory) {
        let key = Key(domain: KernelRegistry.normalize(domain), op: op)
        entries[key, default: []].append((since, factory))
        entries[key]!.sort { $0.since < $1.since }
    }

    /// Registers one factory for several ops (an op family sharing one kernel).
    public mutating func register(_ ops: [String], domain: String = "", since: Int, _ factory: @escaping KernelFactory) {
        for op in ops { register(op, domain: domain, since: since, factory) }
    }

    /// The factory for `op` at `opset`, or `nil`.
    public func kernel(domain: String, op: String, opset: Int) -> KernelFactory? {
        guard let list = entries[Key(domain: KernelRegistry.normalize(domain), op: op)] else { return nil }
        return list.last(where: { $0.since <= opset })?.factory
    }

    /// Whether any version of `op` is registered.
    public func contains(domain: String = "", op: String) -> Bool {
        entries[Key(domain: KernelRegistry.normalize(domain), op: op)] != nil
    }

    /// All registered ops as `(domain, op, since-versions)`, sorted.
    public var operators: [(domain: String, op: String, versions: [Int])] {
        entries.map { ($0.key.domain, $0.key.op, $0.value.map(\.since)) }
            .sorted { ($0.domain, $0.op) < ($1.domain, $1.op) }
    }
}
