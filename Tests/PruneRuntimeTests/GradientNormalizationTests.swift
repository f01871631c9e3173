import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of the normalizations against finite differences: LayerNormalization (with its Mean
/// and InvStdDev outputs), RMSNormalization, GroupNormalization (opset 18 per-group and opset 21
/// per-channel parameters), InstanceNormalization, BatchNormalization (inference and training),
/// LpNormalization and MeanVarianceNormalization. float64 unless stated.
struct GradientNormalizationTests {
    typealias R = GradientCheck

    /// (axis, scale shape, bias shape or nil for none).
    @Test(arguments: [(-1, [4], [4]), (1, [3, 4], [3, 4]), (1, [1, 4], [4]), (-1, [4], nil), (0, [2, 3, 4], [3, 1]), (2, [1, 1, 4], [1, 4])] as [(Int64, [Int], [Int]?)])
    func layerNormalization(_ v: (Int64, [Int], [Int]?)) throws {
        let x = R.random([2, 3, 4], seed: 70, in: -2...2)
        let scale = R.random(v.1, seed: 71, in: 0.5...1.5), bias = v.2.map { R.random($0, seed: 72) }
        let inputs: [NDArray?] = bias.map { [x, scale, $0] } ?? [x, scale]
        let failures = try R.check("LayerNormalization", inputs: inputs, attributes: [("axis", .int(v.0)), ("epsilon", .float(1e-3))], opset: 17, probes: 24)
        #expect(failures.isEmpty, "\(v): \(failures.prefix(3))")
    }

    /// The Mean and InvStdDev outputs (float32, their default type) carry cotangents too.
    @Test(arguments: [-1, 1] as [Int64])
    func layerNormalizationStatisticsOutputs(_ axis: Int64) throws {
        let x = R.random([3, 2, 5], seed: 73, dtype: .float, in: -2...2)
        let scale = R.random(axis == -1 ? [5] : [2, 5], seed: 74, dtype: .float, in: 0.5...1.5)
        let bias = R.random(axis == -1 ? [5] : [2, 5], seed: 75, dtype: .float)
        let failures = try R.check("LayerNormalization", inputs: [x, scale, bias], attributes: [("axis", .int(axis))], opset: 17, outputs: 3)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    @Test func layerNormalizationFloat32() throws {
        let x = R.random([4, 64], seed: 76, dtype: .float, in: -2...2)
        let scale = R.random([64], seed: 77, dtype: .float, in: 0.5...1.5), bias = R.random([64], seed: 78, dtype: .float)
        #expect(try R.check("LayerNormalization", inputs: [x, scale, bias], opset: 17).isEmpty)
    }

    @Test(arguments: [(-1, [4]), (1, [3, 4]), (1, [4])] as [(Int64, [Int])])
    func rmsNormalization(_ v: (Int64, [Int])) throws {
        let x = R.random([2, 3, 4], seed: 79, in: -2...2), scale = R.random(v.1, seed: 80, in: 0.5...1.5)
        let failures = try R.check("RMSNormalization", inputs: [x, scale], attributes: [("axis", .int(v.0))], opset: 23)
        #expect(failures.isEmpty, "\(v): \(failures.prefix(3))")
    }

    /// (opset, groups, parameter count): opset 18 with per-group or per-channel parameters,
    /// opset 21 per-channel.
    @Test(arguments: [(18, 2, 2), (18, 2, 4), (18, 1, 1), (18, 4, 4), (21, 2, 4), (21, 1, 4)] as [(Int64, Int64, Int)])
    func groupNormalization(_ v: (Int64, Int64, Int)) throws {
        let x = R.random([2, 4, 3, 3], seed: 81, in: -2...2)
        let scale = R.random([v.2], seed: 82, in: 0.5...1.5), bias = R.random([v.2], seed: 83)
        let failures = try R.check("GroupNormalization", inputs: [x, scale, bias],
                                   attributes: [("num_groups", .int(v.1)), ("epsilon", .float(1e-3))], opset: v.0, probes: 30)
        #expect(failures.isEmpty, "\(v): \(failures.prefix(3))")
    }

    @Test(arguments: [[2, 3, 4, 4], [2, 3, 5], [1, 2, 2, 2, 3]] as [[Int]])
    func instanceNormalization(_ shape: [Int]) throws {
        let x = R.random(shape, seed: 84, in: -2...2)
        let scale = R.random([shape[1]], seed: 85, in: 0.5...1.5), bias = R.random([shape[1]], seed: 86)
        let failures = try R.check("InstanceNormalization", inputs: [x, scale, bias], opset: 6, probes: 30)
        #expect(failures.isEmpty, "\(shape): \(failures.prefix(3))")
    }

    @Test(arguments: [([2, 3, 4, 4], 15), ([4, 3], 9), ([2, 3, 5], 7)] as [([Int], Int64)])
    func batchNormalizationInference(_ v: ([Int], Int64)) throws {
        let x = R.random(v.0, seed: 87, in: -2...2)
        let c = v.0[1]
        let inputs: [NDArray?] = [x, R.random([c], seed: 88, in: 0.5...1.5), R.random([c], seed: 89),
                                  R.random([c], seed: 90), R.random([c], seed: 91, in: 0.5...2)]
        let failures = try R.check("BatchNormalization", inputs: inputs, attributes: [("epsilon", .float(1e-3))], opset: v.1, probes: 30)
        #expect(failures.isEmpty, "\(v): \(failures.prefix(3))")
    }

    @Test func batchNormalizationInferenceFloat32() throws {
        let x = R.random([2, 4, 8, 8], seed: 92, dtype: .float, in: -2...2)
        let inputs: [NDArray?] = [x, R.random([4], seed: 93, dtype: .float, in: 0.5...1.5), R.random([4], seed: 94, dtype: .float),
                                  R.random([4], seed: 95, dtype: .float), R.random([4], seed: 96, dtype: .float, in: 0.5...2)]
        #expect(try R.check("BatchNormalization", inputs: inputs, opset: 15).isEmpty)
    }

    /// Training mode: batch statistics, and the running mean/variance outputs.
    @Test(arguments: [1, 3] as [Int])
    func batchNormalizationTraining(_ outputs: Int) throws {
        let x = R.random([3, 2, 2, 3], seed: 97, in: -2...2)
        let inputs: [NDArray?] = [x, R.random([2], seed: 98, in: 0.5...1.5), R.random([2], seed: 99),
                                  R.random([2], seed: 100), R.random([2], seed: 101, in: 0.5...2)]
        let failures = try R.check("BatchNormalization", inputs: inputs,
                                   attributes: [("training_mode", .int(1)), ("momentum", .float(0.8))], opset: 15, outputs: outputs, probes: 36)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    @Test(arguments: [(1, -1), (2, -1), (2, 0), (1, 1)] as [(Int64, Int64)])
    func lpNormalization(_ v: (Int64, Int64)) throws {
        let x = R.random([3, 4, 2], seed: 102, in: -2...2)
        let failures = try R.check("LpNormalization", inputs: [x], attributes: [("p", .int(v.0)), ("axis", .int(v.1))], opset: 1)
        #expect(failures.isEmpty, "\(v): \(failures.prefix(3))")
    }

    @Test func meanVarianceNormalization() throws {
        let x = R.random([2, 3, 2, 2], seed: 103, in: -2...2)
        #expect(try R.check("MeanVarianceNormalization", inputs: [x], opset: 13).isEmpty)
        #expect(try R.check("MeanVarianceNormalization", inputs: [x], attributes: [("axes", .ints([1]))], opset: 13).isEmpty)
    }
}

/// The VJPs' parallel loops (threads > 1) give the serial results on UNet-sized activations.
struct GradientParallelTests {
    typealias R = GradientCheck

    @Test func normalizationsOnFourThreads() throws {
        let x = R.random([2, 32, 16, 16], seed: 110)
        let s = R.random([32], seed: 111, in: 0.5...1.5), b = R.random([32], seed: 112)
        #expect(try R.threadsAgree("GroupNormalization", inputs: [x, s, b], attributes: [("num_groups", .int(8))], opset: 21))
        #expect(try R.threadsAgree("InstanceNormalization", inputs: [x, s, b]))
        #expect(try R.threadsAgree("BatchNormalization", inputs: [x, s, b, R.random([32], seed: 113), R.random([32], seed: 114, in: 0.5...2)], opset: 15))
        let t = R.random([4, 64, 128], seed: 115), ls = R.random([128], seed: 116), lb = R.random([128], seed: 117)
        #expect(try R.threadsAgree("LayerNormalization", inputs: [t, ls, lb], opset: 17))
        #expect(try R.threadsAgree("Softmax", inputs: [t], opset: 13))
    }

    @Test func elementwiseAndReductionsOnFourThreads() throws {
        let x = R.random([1, 32, 32, 32], seed: 118)
        #expect(try R.threadsAgree("Sigmoid", inputs: [x]))
        #expect(try R.threadsAgree("ReduceMean", inputs: [x, nil], constants: [1: Tensor(int64s: [2, 3], shape: [2])]))
        #expect(try R.threadsAgree("ReduceMax", inputs: [x, nil], constants: [1: Tensor(int64s: [1], shape: [1])]))
        #expect(try R.threadsAgree("PRelu", inputs: [x, R.random([32, 1, 1], seed: 119)]))
    }
}
