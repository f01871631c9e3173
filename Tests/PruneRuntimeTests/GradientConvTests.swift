import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of Conv and ConvTranspose against finite differences (float64, which both kernels
/// compute in float64; one float32 case each within the stated tolerance), over strides, pads,
/// auto_pad, dilations, groups (depthwise included), output_padding/output_shape and 1-D to
/// 3-D windows; and the time of the Conv VJP on a UNet-sized layer.
struct GradientConvTests {
    typealias R = GradientCheck

    /// One Conv or ConvTranspose case: input and weight shapes, bias or not, attributes.
    struct ConvCase: CustomStringConvertible, @unchecked Sendable {
        var name: String
        var x: [Int]
        var w: [Int]
        var bias = true
        var attributes: [(String, Attribute)] = []
        var description: String { name }
    }

    static let convCases: [ConvCase] = [
        ConvCase(name: "3x3 pad 1", x: [1, 3, 5, 5], w: [4, 3, 3, 3], attributes: [("pads", .ints([1, 1, 1, 1]))]),
        ConvCase(name: "batch 2, no bias", x: [2, 2, 4, 4], w: [3, 2, 3, 3], bias: false),
        ConvCase(name: "stride 2, asymmetric pads", x: [1, 2, 6, 5], w: [3, 2, 3, 2],
                 attributes: [("strides", .ints([2, 2])), ("pads", .ints([0, 1, 1, 0]))]),
        ConvCase(name: "dilation 2, stride (1, 2)", x: [1, 2, 7, 7], w: [2, 2, 3, 3],
                 attributes: [("dilations", .ints([2, 2])), ("strides", .ints([1, 2])), ("pads", .ints([2, 1, 2, 1]))]),
        ConvCase(name: "SAME_UPPER stride 2", x: [1, 2, 5, 6], w: [3, 2, 3, 3],
                 attributes: [("auto_pad", .string("SAME_UPPER")), ("strides", .ints([2, 2]))]),
        ConvCase(name: "SAME_LOWER", x: [1, 2, 5, 4], w: [2, 2, 2, 3], attributes: [("auto_pad", .string("SAME_LOWER"))]),
        ConvCase(name: "VALID stride 2", x: [1, 2, 6, 6], w: [2, 2, 3, 3],
                 attributes: [("auto_pad", .string("VALID")), ("strides", .ints([2, 2]))]),
        ConvCase(name: "group 2", x: [1, 4, 4, 4], w: [6, 2, 3, 3], attributes: [("group", .int(2)), ("pads", .ints([1, 1, 1, 1]))]),
        ConvCase(name: "depthwise x2", x: [2, 3, 5, 5], w: [6, 1, 3, 3],
                 attributes: [("group", .int(3)), ("pads", .ints([1, 1, 1, 1])), ("strides", .ints([2, 1]))]),
        ConvCase(name: "pointwise", x: [2, 3, 3, 4], w: [5, 3, 1, 1]),
        ConvCase(name: "pointwise stride 2", x: [1, 3, 4, 4], w: [2, 3, 1, 1], attributes: [("strides", .ints([2, 2]))]),
        ConvCase(name: "1-D", x: [2, 2, 9], w: [3, 2, 3], attributes: [("pads", .ints([1, 2])), ("strides", .ints([2])), ("dilations", .ints([2]))]),
        ConvCase(name: "3-D", x: [1, 2, 3, 4, 4], w: [2, 2, 2, 3, 3], attributes: [("pads", .ints([0, 1, 1, 1, 1, 0]))]),
        ConvCase(name: "kernel_shape given", x: [1, 2, 4, 4], w: [2, 2, 3, 3], attributes: [("kernel_shape", .ints([3, 3]))]),
    ]

    @Test(arguments: convCases)
    func conv(_ t: ConvCase) throws {
        let x = R.random(t.x, seed: 1), w = R.random(t.w, seed: 2)
        let b: NDArray? = t.bias ? R.random([t.w[0]], seed: 3) : nil
        let failures = try R.check("Conv", inputs: [x, w, b], attributes: t.attributes, probes: 16)
        #expect(failures.isEmpty, "\(t): \(failures.prefix(3))")
    }

    @Test func convFloat32WithinTheStatedTolerance() throws {
        // The float32 path of the forward pass (the vector GEMM where the CPU has it).
        let x = R.random([1, 4, 6, 6], seed: 4, dtype: .float), w = R.random([4, 4, 3, 3], seed: 5, dtype: .float)
        let b = R.random([4], seed: 6, dtype: .float)
        for attrs: [(String, Attribute)] in [[("pads", .ints([1, 1, 1, 1]))], [("strides", .ints([2, 2])), ("group", .int(2))]] {
            let w2 = attrs.count == 2 ? R.random([4, 2, 3, 3], seed: 5, dtype: .float) : w
            let failures = try R.check("Conv", inputs: [x, w2, b], attributes: attrs, probes: 12)
            #expect(failures.isEmpty, "\(attrs): \(failures.prefix(3))")
        }
    }

    static let convTransposeCases: [ConvCase] = [
        ConvCase(name: "3x3", x: [1, 3, 4, 4], w: [3, 2, 3, 3]),
        ConvCase(name: "stride 2, output_padding 1, pads", x: [2, 2, 3, 3], w: [2, 3, 3, 3],
                 attributes: [("strides", .ints([2, 2])), ("output_padding", .ints([1, 1])), ("pads", .ints([1, 1, 1, 1]))]),
        ConvCase(name: "group 2, dilation 2", x: [1, 4, 3, 3], w: [4, 2, 2, 2], bias: false,
                 attributes: [("group", .int(2)), ("dilations", .ints([2, 2]))]),
        ConvCase(name: "SAME_UPPER stride 2", x: [1, 2, 3, 3], w: [2, 2, 3, 3],
                 attributes: [("auto_pad", .string("SAME_UPPER")), ("strides", .ints([2, 2]))]),
        ConvCase(name: "output_shape", x: [1, 2, 3, 3], w: [2, 1, 3, 3],
                 attributes: [("strides", .ints([2, 2])), ("output_shape", .ints([8, 8]))]),
        ConvCase(name: "1-D", x: [1, 2, 5], w: [2, 2, 4], attributes: [("strides", .ints([3])), ("pads", .ints([1, 0]))]),
        ConvCase(name: "3-D", x: [1, 2, 2, 3, 2], w: [2, 1, 2, 2, 3], attributes: [("strides", .ints([1, 2, 1]))]),
    ]

    @Test(arguments: convTransposeCases)
    func convTranspose(_ t: ConvCase) throws {
        let x = R.random(t.x, seed: 7), w = R.random(t.w, seed: 8)
        let group = t.attributes.first { $0.0 == "group" }.map { a -> Int in if case .int(let v) = a.1 { return Int(v) }; return 1 } ?? 1
        let b: NDArray? = t.bias ? R.random([t.w[1] * group], seed: 9) : nil
        let failures = try R.check("ConvTranspose", inputs: [x, w, b], attributes: t.attributes, probes: 16)
        #expect(failures.isEmpty, "\(t): \(failures.prefix(3))")
    }

    @Test func convTransposeFloat32WithinTheStatedTolerance() throws {
        let x = R.random([1, 3, 3, 3], seed: 10, dtype: .float), w = R.random([3, 2, 3, 3], seed: 11, dtype: .float)
        let b = R.random([2], seed: 12, dtype: .float)
        let failures = try R.check("ConvTranspose", inputs: [x, w, b], attributes: [("strides", .ints([2, 2]))], probes: 12)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    /// The parallel loops (im2col rows, col2im channels, pool channels) give what one thread gives.
    @Test func twoThreadsAgreeWithOne() throws {
        let b = GraphBuilder(name: "conv")
        let x = b.input("x", .double, [2, 8, 32, 32])
        let w = b.input("w", .double, [8, 8, 3, 3]), bias = b.input("b", .double, [8])
        let y = b.node(OpType("Conv"), [x, w, bias], attributes: [("pads", .ints([1, 1, 1, 1]))], outputs: 1)[0]
        b.output(b.node(OpType("MaxPool"), [y], attributes: [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2]))], outputs: 1)[0])
        let feeds = ["x": R.random([2, 8, 32, 32], seed: 17), "w": R.random([8, 8, 3, 3], seed: 18), "b": R.random([8], seed: 19)]
        let seed = R.random([2, 8, 16, 16], seed: 20)
        var results: [[String: NDArray]] = []
        for threads in [1, 2] {
            let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: threads, profile: false, foldConstants: false))
            results.append(try interp.runRecording(feeds).backward(seeds: [b.graph.outputs[0].name: seed], wrt: ["x", "w", "b"]))
        }
        for name in ["x", "w", "b"] {
            let one = results[0][name]!.buffer(as: Double.self), two = results[1][name]!.buffer(as: Double.self)
            let worst = zip(one, two).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
            #expect(worst < 1e-12, "\(name): \(worst)")
        }
    }

    /// The VJP of a UNet-sized Conv (1×64×16×16, 3×3, 64→64, float32) against its forward pass;
    /// printed, not asserted (debug builds are slow and machines differ).
    @Test func convVJPTiming() throws {
        let b = GraphBuilder(name: "conv")
        let x = b.input("x", .float, [1, 64, 16, 16])
        let w = b.input("w", .float, [64, 64, 3, 3]), bias = b.input("b", .float, [64])
        b.output(b.node(OpType("Conv"), [x, w, bias], attributes: [("pads", .ints([1, 1, 1, 1]))], outputs: 1)[0])
        let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: 1, profile: false, foldConstants: false))
        let feeds = ["x": R.random([1, 64, 16, 16], seed: 13, dtype: .float), "w": R.random([64, 64, 3, 3], seed: 14, dtype: .float),
                     "b": R.random([64], seed: 15, dtype: .float)]
        let seed = R.random([1, 64, 16, 16], seed: 16, dtype: .float)
        let output = b.graph.outputs[0].name
        _ = try interp.runRecording(feeds).backward(seeds: [output: seed], wrt: ["x", "w", "b"])  // warm-up
        let runs = 5
        var forward = 0.0, backward = 0.0
        for _ in 0..<runs {
            let t0 = Date()
            let tape = try interp.runRecording(feeds)
            let t1 = Date()
            let grads = try tape.backward(seeds: [output: seed], wrt: ["x", "w", "b"])
            let t2 = Date()
            #expect(grads["w"]?.shape == [64, 64, 3, 3])
            forward += t1.timeIntervalSince(t0)
            backward += t2.timeIntervalSince(t1)
        }
        let f = forward / Double(runs) * 1000, v = backward / Double(runs) * 1000
        print(String(format: "Conv 1x64x16x16 3x3 64->64 float32: forward %.2f ms, VJP (dX, dW, dB) %.2f ms (%.1fx)", f, v, v / max(f, 1e-9)))
    }
}
