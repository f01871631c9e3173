import Foundation

/// Adam with decoupled weight decay (AdamW, Loshchilov & Hutter); `weightDecay = 0` is Adam.
///
/// One optimizer holds the moments of one flat parameter vector.
public struct AdamW: Sendable {
    /// Learning rate.
    public var learningRate: Double
    /// First-moment decay.
    public var beta1: Double
    /// Second-moment decay.
    public var beta2: Double
    /// Added to the denominator.
    public var epsilon: Double
    /// Decoupled weight decay (multiplies the parameter by `1 − lr·wd` each step).
    public var weightDecay: Double
    private var m: [Double] = []
    private var v: [Double] = []
    /// Steps taken.
    public private(set) var t = 0

    /// An optimizer with PyTorch's defaults except the learning rate.
    public init(learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// One update of `parameters` (in place) along `gradients` (same length).
    public mutating func step(_ parameters: inout [Double], gradients: [Double]) {
        precondition(parameters.count == gradients.count, "AdamW: \(parameters.count) parameters, \(gradients.count) gradients")
        if m.count != parameters.count {
            m = [Double](repeating: 0, count: parameters.count)
            v = m
            t = 0
        }
        t += 1
        let c1 = 1 - Foundation.pow(beta1, Double(t)), c2 = 1 - Foundation.pow(beta2, Double(t))
        for i in parameters.indices {
            let g = gradients[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            parameters[i] -= learningRate * weightDecay * parameters[i]
            parameters[i] -= learningRate * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon)
        }
    }
}
