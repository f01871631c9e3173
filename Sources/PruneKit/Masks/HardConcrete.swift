import Foundation

/// Hard-concrete gates (Louizos et al., "Learning Sparse Neural Networks through L0
/// Regularization"), as EcoDiff uses them: a stretched, clipped binary-concrete sample per unit,
/// differentiable in its location `log α`.
public struct HardConcrete: Sendable, Equatable {
    /// Temperature β.
    public var beta = 0.83
    /// Upper stretch ζ.
    public var zeta = 1.1
    /// Lower stretch γ.
    public var gamma = -0.1

    /// The default constants (β = 0.83, ζ = 1.1, γ = −0.1).
    public init() {}

    /// A training sample for noise `u` in (0, 1), and `dz/d log α`.
    public func sample(logAlpha: Double, u: Double) -> (z: Double, dz: Double) {
        let uu = min(max(u, 1e-6), 1 - 1e-6)
        let s = sigmoid((Foundation.log(uu) - Foundation.log(1 - uu) + logAlpha) / beta)
        let stretched = s * (zeta - gamma) + gamma
        let inside = stretched > 0 && stretched < 1
        return (min(1, max(0, stretched)), inside ? (zeta - gamma) * s * (1 - s) / beta : 0)
    }

    /// The deterministic gate (the noise-free median), for evaluation.
    public func gate(logAlpha: Double) -> Double {
        min(1, max(0, sigmoid(logAlpha) * (zeta - gamma) + gamma))
    }

    /// P(gate ≠ 0), the expected L0 of one gate, and its derivative in `log α`.
    public func probabilityNonZero(logAlpha: Double) -> (p: Double, dp: Double) {
        let p = sigmoid(logAlpha - beta * Foundation.log(-gamma / zeta))
        return (p, p * (1 - p))
    }

    func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
}
