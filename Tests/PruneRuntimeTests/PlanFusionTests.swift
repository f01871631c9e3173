import Foundation
import PruneIR
import PruneTestSupport
import Testing

@testable import PruneRuntime

/// Fusions in the execution plan (Conv+BatchNormalization folded, bias Add and Relu in place):
/// plain runs execute fewer steps and give the outputs of the node-by-node plan.
@Suite struct PlanFusionTests {
    /// The first calibration set of an example model (keys without a `setN.` prefix).
    static func feeds(_ name: String) throws -> [String: NDArray] {
        let entries = try NPZ.read(contentsOf: TestPaths.examples.appendingPathComponent("\(name.split(separator: ".")[0]).calib.npz"))
        return Dictionary(entries.filter { !$0.0.contains(".") }.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// Steps absorbed into their producer, at least, per example model: the legacy ResNet's 13
    /// BatchNormalizations and the 6 Relus that follow one (the dynamo export has its
    /// normalizations folded already, and Relus after 6 Convs); bias Adds after MatMuls or Convs
    /// in the transformers and the UNet; the llamas' 5 RMSNorm chains (7 steps each in the
    /// legacy export, with its Cast to float32, 6 in the dynamo one) and their 4 rotary chains (7 steps
    /// each).
    @Test(arguments: [
        ("resnet", 13, 19), ("resnet.dynamo", 0, 6), ("bert", 0, 12), ("bert.dynamo", 0, 12), ("unet", 0, 16), ("unet.dynamo", 0, 16), ("dit", 0, 13),
        ("dit.dynamo", 0, 13), ("llama", 0, 65), ("llama.dynamo", 0, 60),
    ])
    func fusedRunsMatchNodeByNodeRuns(_ name: String, _ batchNorms: Int, _ minimumFused: Int) throws {
        let model = try ModelImporter.load(contentsOf: TestPaths.examples.appendingPathComponent("\(name).onnx"))
        let fused = try Interpreter(model: model, options: .init(threads: 2, profile: false))
        let plain = try Interpreter(model: model, options: .init(threads: 2, profile: false, fuse: false))
        let removed = plain.fastPlan.steps.count - fused.fastPlan.steps.count
        #expect(removed >= max(batchNorms, minimumFused), "\(name): \(removed) steps fused away")
        #expect(!fused.fastPlan.steps.contains { $0.op == "BatchNormalization" } || batchNorms == 0)
        // Recorded runs keep one step per node.
        #expect(fused.mainPlan.steps.count == plain.mainPlan.steps.count)
        let inputs = try Self.feeds(name)
        let a = try fused.run(inputs), b = try plain.run(inputs)
        for (key, want) in b {
            let got = try #require(a[key])
            #expect(got.shape == want.shape)
            let x = got.doubles(), y = want.doubles()
            let scale = max(1e-3, y.map { abs($0) }.max() ?? 0)
            let diff = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            #expect(diff / scale < 1e-5, "\(name) \(key): max difference \(diff) (scale \(scale))")
        }
        // A second run with the same shapes takes the memoized shape arithmetic as it is.
        let again = try fused.run(inputs)
        for (key, want) in a { #expect(again[key]!.doubles() == want.doubles()) }
    }

    /// The epilogue adds a bias along the last axis or the channel axis, then clamps.
    @Test func epilogueAddsBiasAlongTheRightAxisThenClamps() throws {
        let interp = try Interpreter(model: Model(graph: Graph(name: "empty")), options: .init(profile: false))
        let ctx = KernelContext(interpreter: interp, frame: Frame(plan: interp.mainPlan, parent: nil))
        final class Constant: Kernel {
            let value: NDArray
            init(_ v: NDArray) { value = v }
            func run(_ inputs: [NDArray?], _ context: KernelContext) throws -> [NDArray?] { [value.copy()] }
        }
        let y = NDArray([Float](arrayLiteral: -3, -2, -1, 0, 1, 2), shape: [1, 2, 3])
        let last = FusedEpilogueKernel(inner: Constant(y), epilogue: FusedEpilogue(bias: NDArray([Float](arrayLiteral: 1, 2, 3), shape: [3]), biasAxisFromEnd: 0, relu: false))
        #expect(try last.run([], ctx)[0]!.doubles() == [-2, 0, 2, 1, 3, 5])
        let channel = FusedEpilogueKernel(inner: Constant(y), epilogue: FusedEpilogue(bias: NDArray([Float](arrayLiteral: 10, -10), shape: [2, 1]), biasAxisFromEnd: 1, relu: true))
        #expect(try channel.run([], ctx)[0]!.doubles() == [7, 8, 9, 0, 0, 0])
    }

    /// An elementwise region (tanh-GELU of `x`, times `y`, plus `x`): one step; `y` of the same
    /// shape, repeating as a trailing block, or broadcast another way (the region then runs its
    /// own kernels one by one) all give the unfused results. `x` is read by a step between the
    /// region's first and last steps, so the fused step must keep it alive until it runs.
    @Test(arguments: [[4, 2, 8], [2, 8], [4, 2, 1], [1, 4, 2, 8]])
    func elementwiseRegionMatchesItsSteps(_ yShape: [Int]) throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [4, 2, 8])
        let y = b.input("y", .float, yShape)
        func c(_ v: Float) -> Value { b.initializer("c", Tensor.scalar(v)) }
        let cube = b.add(OpType("Pow"), [x, c(3)])
        let inner = b.add(OpType("Add"), [x, b.add(OpType("Mul"), [cube, c(0.044715)])])
        let side = b.add(OpType("Neg"), [x])  // reads x between the region's steps
        let t = b.add(OpType("Tanh"), [b.add(OpType("Mul"), [inner, c(0.7978846)])])
        let gelu = b.add(OpType("Mul"), [b.add(OpType("Mul"), [x, b.add(OpType("Add"), [t, c(1)])]), c(0.5)])
        let out = b.add(OpType("Add"), [b.add(OpType("Mul"), [gelu, y]), x])
        b.output(out, side)
        let model = b.model(opset: 17)
        let fused = try Interpreter(model: model, options: .init(profile: false))
        let plain = try Interpreter(model: model, options: .init(profile: false, fuse: false))
        #expect(fused.fastPlan.steps.count == 2, "\(fused.fastPlan.steps.map(\.op))")
        var rng = SystemRandomNumberGenerator()
        let xs = NDArray((0..<64).map { _ in Float.random(in: -3...3, using: &rng) }, shape: [4, 2, 8])
        let ys = NDArray((0..<yShape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &rng) }, shape: yShape)
        let a = try fused.run(["x": xs, "y": ys]), e = try plain.run(["x": xs, "y": ys])
        for key in [out.name, side.name] {
            #expect(a[key]!.shape == e[key]!.shape)
            let diff = zip(a[key]!.doubles(), e[key]!.doubles()).map { abs($0 - $1) }.max() ?? 1
            #expect(diff < 1e-5, "\(key) with y \(yShape): \(diff)")
        }
    }

    /// Every instruction an elementwise region holds, over several blocks with a partial last
    /// one, with constants as first and second operands, NaN, infinities and signed zeros in
    /// the input: one fused step, the unfused results (NaN where they are NaN).
    @Test func elementwiseRegionRunsEveryInstruction() throws {
        let b = GraphBuilder()
        let shape = [3, 347]  // 1,041 elements: four full blocks of 256 and 17 more
        let x = b.input("x", .float, shape)
        let y = b.input("y", .float, shape)
        func c(_ v: Float) -> Value { b.initializer("c", Tensor.scalar(v)) }
        func op(_ name: String, _ xs: Value...) -> Value { b.add(OpType(name), xs) }
        let terms = [
            op("Mul", op("Sub", c(2), x), y),
            op("Reciprocal", op("Add", op("Abs", y), c(0.5))),
            op("Div", c(3), op("Add", op("Abs", x), c(1))),
            op("Pow", op("Sqrt", op("Abs", x)), c(2)),
            op("Pow", op("Div", x, c(4)), c(3)),
            op("Relu", op("Neg", x)),
            op("Sigmoid", x),
            op("Tanh", y),
            op("Erf", op("Sub", x, c(0.25))),
            op("Exp", op("Neg", op("Abs", y))),
            op("Relu", x),
            op("Abs", op("Mul", x, c(-1))),
        ]
        let out = terms.dropFirst().reduce(terms[0]) { op("Add", $0, $1) }
        b.output(out)
        let model = b.model(opset: 17)
        let fused = try Interpreter(model: model, options: .init(profile: false))
        let plain = try Interpreter(model: model, options: .init(profile: false, fuse: false))
        #expect(fused.fastPlan.steps.count == 1, "\(fused.fastPlan.steps.map(\.op))")
        var rng = SystemRandomNumberGenerator()
        let n = shape.reduce(1, *)
        var xv = (0..<n).map { _ in Float.random(in: -4...4, using: &rng) }
        let yv = (0..<n).map { _ in Float.random(in: -3...3, using: &rng) }
        xv[5] = .nan; xv[300] = -0.0; xv[301] = 0; xv[600] = .infinity; xv[n - 1] = -.infinity
        let a = try fused.run(["x": NDArray(xv, shape: shape), "y": NDArray(yv, shape: shape)])[out.name]!.scalars(as: Float.self)
        let e = try plain.run(["x": NDArray(xv, shape: shape), "y": NDArray(yv, shape: shape)])[out.name]!.scalars(as: Float.self)
        #expect(a.count == n)
        var nanMismatch = 0, diff: Float = 0
        for (u, v) in zip(a, e) {
            if u.isNaN != v.isNaN { nanMismatch += 1 }
            if u.isFinite { diff = max(diff, abs(u - v) / max(1, abs(v))) }
        }
        #expect(nanMismatch == 0, "NaN at \(nanMismatch) different elements")
        #expect(diff < 1e-6, "largest relative difference \(diff)")
        #expect(a[5].isNaN && e[5].isNaN)
    }

    /// Llama's rotate_half rotary chain becomes one step; cos/sin that repeat in x as a trailing
    /// block take the fused loop, others (a broadcast that is not a trailing block) the original
    /// steps; both give the node-by-node result.
    @Test(arguments: [[4, 8], [1, 1, 4, 8], [2, 1, 8]])
    func rotaryHalvesMatchTheirSteps(_ tableShape: [Int]) throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 2, 4, 8])
        let cos = b.input("cos", .float, tableShape)
        let sin = b.input("sin", .float, tableShape)
        func ints(_ name: String, _ v: [Int64]) -> Value { b.initializer(name, Tensor(int64s: v, shape: [v.count])) }
        let axis = ints("axis", [3])  // the Slices say 3, the Concat -1, as torch's exporters write them
        let x1 = b.add(OpType("Slice"), [x, ints("zero", [0]), ints("four", [4]), axis])
        let x2 = b.add(OpType("Slice"), [x, ints("four2", [4]), ints("big", [Int64.max]), axis])
        let rotated = b.add(OpType("Concat"), [b.add(OpType("Neg"), [x2]), x1], attributes: [("axis", .int(-1))])
        let y = b.add(OpType("Add"), [b.add(OpType("Mul"), [x, cos]), b.add(OpType("Mul"), [rotated, sin])])
        b.output(y)
        try Self.expectOneRotaryStep(b.model(opset: 17), output: y.name, tables: tableShape, extra: [:])
    }

    /// The half point given at run time (torch computes it as x.shape[-1] // 2): the Slices' bounds
    /// are inputs here. 4 is the half of 8 and takes the fused loop; 3 is not, so the original
    /// steps run; both give the node-by-node result.
    @Test(arguments: [Int64(4), 3])
    func rotaryHalvesWithBoundsComputedAtRunTime(_ half: Int64) throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, 2, 4, 8])
        let cos = b.input("cos", .float, [4, 8])
        let sin = b.input("sin", .float, [4, 8])
        let h = b.input("h", .int64, [1])
        let axis = b.initializer("axis", Tensor(int64s: [3], shape: [1]))
        let x1 = b.add(OpType("Slice"), [x, b.initializer("zero", Tensor(int64s: [0], shape: [1])), h, axis])
        let x2 = b.add(OpType("Slice"), [x, h, b.initializer("big", Tensor(int64s: [Int64.max], shape: [1])), axis])
        let rotated = b.add(OpType("Concat"), [b.add(OpType("Neg"), [x2]), x1], attributes: [("axis", .int(-1))])
        let y = b.add(OpType("Add"), [b.add(OpType("Mul"), [rotated, sin]), b.add(OpType("Mul"), [cos, x])])
        b.output(y)
        try Self.expectOneRotaryStep(b.model(opset: 17), output: y.name, tables: [4, 8], extra: ["h": NDArray([half], shape: [1])])
    }

    /// The model (inputs x [1, 2, 4, 8], cos and sin shaped `tables`, and `extra`) runs as one
    /// RotaryEmbedding step and gives the node-by-node result on random inputs.
    private static func expectOneRotaryStep(_ model: Model, output: String, tables: [Int], extra: [String: NDArray]) throws {
        let fused = try Interpreter(model: model, options: .init(profile: false))
        let plain = try Interpreter(model: model, options: .init(profile: false, fuse: false))
        #expect(fused.fastPlan.steps.map(\.op) == ["RotaryEmbedding"], "\(fused.fastPlan.steps.map(\.op))")
        var rng = SystemRandomNumberGenerator()
        func random(_ shape: [Int]) -> NDArray {
            NDArray((0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &rng) }, shape: shape)
        }
        let feeds = ["x": random([1, 2, 4, 8]), "cos": random(tables), "sin": random(tables)].merging(extra) { a, _ in a }
        let a = try fused.run(feeds)[output]!, e = try plain.run(feeds)[output]!
        #expect(a.shape == e.shape)
        let diff = zip(a.doubles(), e.doubles()).map { abs($0 - $1) }.max() ?? 1
        #expect(diff < 1e-6, "tables \(tables), \(extra.keys.sorted()): \(diff)")
    }
    /// A residual connection after a convolution, Conv(x) + skip → Relu, runs as one step that
    /// adds and clamps inside the convolution's GEMM, and gives the node-by-node result: 72
    /// channels (packed panels, the sum in registers), 8 channels (padded rows in place, the sum
    /// as the grid is copied out), the Add's operands either way round, with and without the
    /// Relu, a skip computed after the convolution (then the later Conv takes the sum, reading
    /// the earlier one's output), and a skip that broadcasts ([1, C, 1, 1]: the steps run as
    /// they were).
    @Test(arguments: [
        // (channels, skip shape is the output's, convolution output first in the Add, Relu, skip made after)
        (72, true, true, true, false), (8, true, true, true, false), (72, true, false, false, false),
        (8, true, false, true, false), (72, true, true, true, true), (72, false, true, true, false),
    ])
    func convResidualMatchesItsSteps(_ p: (channels: Int, fullSkip: Bool, productFirst: Bool, relu: Bool, skipAfter: Bool)) throws {
        let c = p.channels, h = 9, w = 11
        var rng = SystemRandomNumberGenerator()
        func random(_ shape: [Int]) -> NDArray {
            NDArray((0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) }, shape: shape)
        }
        let b = GraphBuilder()
        let x = b.input("x", .float, [1, c, h, w])
        let weights = b.initializer("w", random([c, c, 3, 3]).tensor())
        let bias = b.initializer("b", random([c]).tensor())
        let pads: (String, Attribute) = ("pads", .ints([1, 1, 1, 1]))
        let skipInput = b.input("s", .float, p.fullSkip ? [1, c, h, w] : [1, c, 1, 1])
        var skip = skipInput
        if !p.skipAfter { skip = b.add(OpType("Mul"), [skipInput, skipInput]) }
        let conv = b.add(OpType("Conv"), [x, weights, bias], attributes: [pads])
        if p.skipAfter {
            let w2 = b.initializer("w2", random([c, c, 1, 1]).tensor())
            skip = b.add(OpType("Conv"), [x, w2])
        }
        var y = b.add(OpType("Add"), p.productFirst ? [conv, skip] : [skip, conv])
        if p.relu { y = b.add(OpType("Relu"), [y]) }
        b.output(y)
        let model = b.model(opset: 17)
        let fused = try Interpreter(model: model, options: .init(threads: 2, profile: false))
        let plain = try Interpreter(model: model, options: .init(threads: 2, profile: false, fuse: false))
        let ops = fused.fastPlan.steps.map(\.op)
        #expect(!ops.contains("Add") && !ops.contains("Relu"), "\(ops)")
        let feeds = ["x": random([1, c, h, w]), "s": random(p.fullSkip ? [1, c, h, w] : [1, c, 1, 1])]
        let got = try fused.run(feeds)[y.name]!, want = try plain.run(feeds)[y.name]!
        #expect(got.shape == want.shape)
        let diff = zip(got.doubles(), want.doubles()).map { abs($0 - $1) }.max() ?? 1
        #expect(diff < 1e-4, "\(p): \(diff)")
        if p.relu { #expect(got.doubles().allSatisfy { $0 >= 0 }) }
    }
}
