import Foundation
import PruneIR

/// A node compiled for execution: attributes parsed once, then run many times.
///
/// A kernel is made by a ``KernelFactory`` registered in a ``KernelRegistry`` for a
/// (domain, op type, since-version). `run` receives the node's inputs (`nil` for an omitted
/// optional input) and returns one array per node output (`nil` for an output it does not make).
/// It throws ``KernelError`` for invalid inputs.
public protocol Kernel: AnyObject {
    /// Computes the node's outputs.
    func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?]
}

/// What a ``KernelFactory`` gets: the node and the opset version it runs under.
public struct KernelBuildInfo {
    /// The node to compile.
    public let node: Node
    /// The model's opset version for the node's domain.
    public let opset: Int

    /// An attribute, or `defaultValue` when the node does not set it. Throws on a kind mismatch.
    public func attribute<T: AttributeReadable>(_ name: String, default defaultValue: T) throws -> T {
        try node.attribute(name, as: T.self) ?? defaultValue
    }

    /// An optional attribute. Throws on a kind mismatch.
    public func attribute<T: AttributeReadable>(_ name: String, as type: T.Type = T.self) throws -> T? {
        try node.attribute(name, as: T.self)
    }

    /// The element type of input `i` when the IR knows it.
    public func inputType(_ i: Int) -> DType? {
        i < node.inputs.count ? node.inputs[i]?.type?.elementType : nil
    }

    /// Whether input `i` is present (not omitted).
    public func hasInput(_ i: Int) -> Bool { i < node.inputs.count && node.inputs[i] != nil }

    /// The constant value of input `i` (an initializer or a Constant's output), if it has one.
    public func constantInput(_ i: Int) -> Tensor? {
        i < node.inputs.count ? node.inputs[i]?.constantValue : nil
    }
}

/// Makes a kernel for a node; throws ``KernelError/unsupported(_:)`` for cases it cannot run.
public typealias KernelFactory = (KernelBuildInfo) throws -> any Kernel

/// A kernel written as a closure, for ops whose kernel keeps no state beyond its attributes.
public final class ClosureKernel: Kernel {
    let body: ([NDArray?], KernelContext) throws -> [NDArray?]

    /// Wraps `body` as a kernel.
    public init(_ body: @escaping ([NDArray?], KernelContext) throws -> [NDArray?]) { self.body = body }

    public func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] {
        try body(inputs, context)
    }
}

extension Array where Element == NDArray? {
    /// Input `i`, which the op requires.
    public func required(_ i: Int) throws -> NDArray {
        guard i < count, let a = self[i] else { throw KernelError("missing required input \(i)") }
        return a
    }

    /// Input `i`, or `nil` when omitted or out of range.
    public func optional(_ i: Int) -> NDArray? { i < count ? self[i] : nil }
}
