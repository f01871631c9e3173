import Foundation
import PruneIR
@testable import PruneRuntime
import Testing

/// VJPs of the layout and indexing ops (Transpose, DepthToSpace, SpaceToDepth, Concat, Split,
/// Slice, Gather, GatherElements, GatherND, Expand, Tile, Identity, Squeeze, Trilu, Range,
/// EyeLike) against finite differences, in float64, and the tape's handling of the integer shape
/// ops (Shape, Size, ConstantOfShape, NonZero) on a gradient path.
struct GradientLayoutTests {
    typealias R = GradientCheck

    static func ints(_ v: [Int], _ shape: [Int]? = nil) -> Tensor {
        Tensor(int64s: v.map(Int64.init), shape: shape ?? [v.count])
    }

    // MARK: Transpose and the block shuffles

    @Test(arguments: [([2, 3, 4], [1, 2, 0] as [Int]?), ([2, 3, 4], nil), ([2, 1, 3, 2], [0, 3, 1, 2]), ([5], nil), ([3, 1], [1, 0])] as [([Int], [Int]?)])
    func transpose(_ shape: [Int], _ perm: [Int]?) throws {
        let x = R.random(shape, seed: 1)
        let failures = try R.check("Transpose", inputs: [x], attributes: perm.map { [("perm", .ints($0.map(Int64.init)))] } ?? [])
        #expect(failures.isEmpty, "\(shape) perm \(String(describing: perm)): \(failures.prefix(3))")
    }

    @Test func transposeFloat32() throws {
        let x = R.random([3, 4, 5], seed: 2, dtype: .float)
        #expect(try R.check("Transpose", inputs: [x], attributes: [("perm", .ints([2, 0, 1]))]).isEmpty)
    }

    @Test(arguments: ["DCR", "CRD"])
    func depthAndSpace(_ mode: String) throws {
        let d = R.random([2, 8, 2, 3], seed: 3)
        #expect(try R.check("DepthToSpace", inputs: [d], attributes: [("blocksize", .int(2)), ("mode", .string(mode))]).isEmpty)
        let s = R.random([2, 2, 4, 6], seed: 4)
        #expect(try R.check("SpaceToDepth", inputs: [s], attributes: [("blocksize", .int(2)), ("mode", .string(mode))], opset: 18).isEmpty)
    }

    // MARK: Concat and Split

    @Test(arguments: [1, -1, 0, -3])
    func concat(_ axis: Int) throws {
        let a = R.random([2, 3, 2], seed: 5)
        var bShape = [2, 3, 2], cShape = [2, 3, 2]
        let n = axis < 0 ? axis + 3 : axis
        bShape[n] = 1
        cShape[n] = 4
        let b = R.random(bShape, seed: 6), c = R.random(cShape, seed: 7)
        let failures = try R.check("Concat", inputs: [a, b, c], attributes: [("axis", .int(Int64(axis)))])
        #expect(failures.isEmpty, "axis \(axis): \(failures.prefix(3))")
    }

    @Test func concatWithAConstantInputDifferentiatesTheOthers() throws {
        let a = R.random([2, 3], seed: 8), b = R.random([2, 2], seed: 9)
        #expect(try R.check("Concat", inputs: [a, b, a], constants: [1: b.tensor()], attributes: [("axis", .int(1))]).isEmpty)
    }

    @Test func splitSizesAsInput() throws {
        let x = R.random([2, 7, 3], seed: 10)
        let failures = try R.check("Split", inputs: [x, nil], constants: [1: Self.ints([2, 4, 1])], attributes: [("axis", .int(1))],
                                   opset: 18, outputs: 3)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    @Test func splitSizesAsAttributeBefore13() throws {
        let x = R.random([5, 3], seed: 11)
        #expect(try R.check("Split", inputs: [x], attributes: [("axis", .int(0)), ("split", .ints([3, 2]))], opset: 11, outputs: 2).isEmpty)
        // Equal parts along a negative axis.
        let y = R.random([2, 6], seed: 12)
        #expect(try R.check("Split", inputs: [y], attributes: [("axis", .int(-1))], opset: 11, outputs: 3).isEmpty)
    }

    @Test func splitNumOutputs() throws {
        // 7 into 3 parts: 3, 3, 1.
        let x = R.random([3, 7], seed: 13)
        #expect(try R.check("Split", inputs: [x], attributes: [("axis", .int(1)), ("num_outputs", .int(3))], opset: 18, outputs: 3).isEmpty)
    }

    /// Split with cotangents for only some outputs: the others' blocks get zeros.
    @Test(arguments: [0, 1])
    func splitOutputsWithoutCotangentGetZeros(_ axis: Int) throws {
        let b = GraphBuilder(name: "split")
        let x = b.input("x", .double, [4, 6])
        let parts = b.node(OpType("Split"), [x], attributes: [("axis", .int(Int64(axis))), ("num_outputs", .int(3))], outputs: 3)
        b.graph.outputs = parts
        let interp = try Interpreter(model: b.model(opset: 18), options: .init(threads: 1, profile: false, foldConstants: false))
        let xv = R.random([4, 6], seed: 14)
        let tape = try interp.runRecording(["x": xv])
        let middle = tape.outputs[parts[1].name]!
        let seed = R.random(middle.shape, seed: 15)
        let g = try #require(try tape.backward(seeds: [parts[1].name: seed], wrt: ["x"])["x"])
        #expect(g.shape == [4, 6])
        let gs = g.buffer(as: Double.self), ss = seed.buffer(as: Double.self)
        for i in 0..<4 {
            for j in 0..<6 {
                // The middle part: rows 2..<4 along axis 0 (parts of 2), columns 2..<4 along axis 1.
                let k = axis == 0 ? i : j
                let expected = (2..<4).contains(k) ? (axis == 0 ? ss[(i - 2) * 6 + j] : ss[i * 2 + (j - 2)]) : 0
                #expect(gs[i * 6 + j] == expected)
            }
        }
    }

    // MARK: Slice

    /// (starts, ends, axes, steps) for an input of shape [4, 5, 6].
    static let sliceCases: [([Int], [Int], [Int]?, [Int]?)] = [
        ([1, 0], [3, 5], nil, nil),                       // leading axes, default axes and steps
        ([-4], [-1], [2], nil),                           // negative starts/ends, one axis
        ([0, 1], [Int.max, 5], [-1, 1], [2, 3]),          // negative axis, steps > 1, end past the axis
        ([-1, 4], [Int.min, 0], [0, 2], [-1, -2]),        // negative steps (reversed)
        ([3], [1], [1], [-1]),                            // negative step inside the axis
        ([2], [2], [0], nil),                             // empty slice
        ([0, 0, 0], [4, 5, 6], [0, 1, 2], [1, 1, 1]),     // the whole array (a view)
    ]

    @Test(arguments: sliceCases)
    func sliceInputs(_ c: ([Int], [Int], [Int]?, [Int]?)) throws {
        let x = R.random([4, 5, 6], seed: 16)
        var constants: [Int: Tensor] = [1: Self.ints(c.0), 2: Self.ints(c.1)]
        if let axes = c.2 { constants[3] = Self.ints(axes) }
        if let steps = c.3 {
            constants[4] = Self.ints(steps)
            if c.2 == nil { constants[3] = Self.ints(Array(0..<c.0.count)) }
        }
        let inputs: [NDArray?] = [x, nil, nil] + (constants[3] == nil ? [] : [nil]) + (constants[4] == nil ? [] : [nil])
        let failures = try R.check("Slice", inputs: inputs, constants: constants, opset: 13)
        #expect(failures.isEmpty, "\(c): \(failures.prefix(3))")
    }

    @Test func sliceAttributesInOpset1() throws {
        let x = R.random([4, 5, 6], seed: 17)
        #expect(try R.check("Slice", inputs: [x], attributes: [("starts", .ints([1, -3])), ("ends", .ints([3, 1000]))], opset: 9).isEmpty)
        #expect(try R.check("Slice", inputs: [x], attributes: [("starts", .ints([-5])), ("ends", .ints([-1])), ("axes", .ints([-2]))], opset: 9).isEmpty)
    }

    @Test func sliceFloat32() throws {
        let x = R.random([3, 8], seed: 18, dtype: .float)
        #expect(try R.check("Slice", inputs: [x, nil, nil, nil, nil],
                            constants: [1: Self.ints([7]), 2: Self.ints([0]), 3: Self.ints([1]), 4: Self.ints([-3])]).isEmpty)
    }

    // MARK: Gather family

    /// (data shape, axis, indices, indices shape): repeated and negative indices, scalar indices.
    static let gatherCases: [([Int], Int, [Int], [Int])] = [
        ([5, 3], 0, [0, 2, 2, -1], [4]),
        ([2, 4, 3], 1, [3, -4, 3, 1, 0, 3], [2, 3]),
        ([2, 4, 3], -1, [2], []),
        ([3, 4], 1, [1, 1, 1], [3]),
    ]

    @Test(arguments: gatherCases)
    func gather(_ c: ([Int], Int, [Int], [Int])) throws {
        let data = R.random(c.0, seed: 19)
        let failures = try R.check("Gather", inputs: [data, nil], constants: [1: Self.ints(c.2, c.3)], attributes: [("axis", .int(Int64(c.1)))])
        #expect(failures.isEmpty, "\(c): \(failures.prefix(3))")
    }

    @Test func gatherFloat32AndIndicesAsAGraphInput() throws {
        let data = R.random([6, 4], seed: 20, dtype: .float)
        let indices = NDArray([Int64(5), 0, -1, 2, 5], shape: [5])
        // Indices fed as an input: int64, so only the data is differentiated.
        #expect(try R.check("Gather", inputs: [data, indices]).isEmpty)
    }

    @Test(arguments: [0, 1, -1])
    func gatherElements(_ axis: Int) throws {
        let data = R.random([3, 4], seed: 21)
        let a = axis < 0 ? axis + 2 : axis
        // Indices shaped [2, 3] (smaller than the data), with repeats and negatives along `a`.
        let raw: [Int] = a == 0 ? [0, 2, -1, 2, 2, 0] : [3, -1, 0, 1, 1, -4]
        let failures = try R.check("GatherElements", inputs: [data, nil], constants: [1: Self.ints(raw, [2, 3])],
                                   attributes: [("axis", .int(Int64(axis)))])
        #expect(failures.isEmpty, "axis \(axis): \(failures.prefix(3))")
    }

    @Test func gatherND() throws {
        let data = R.random([3, 4, 2], seed: 22)
        // Full index tuples (scalars gathered), repeated.
        #expect(try R.check("GatherND", inputs: [data, nil], constants: [1: Self.ints([0, 1, 1, 2, 0, 1, 2, 3, 0, -3, -1, 1], [4, 3])]).isEmpty)
        // Partial tuples (rows gathered), a negative index.
        #expect(try R.check("GatherND", inputs: [data, nil], constants: [1: Self.ints([2, 1, -1, -1, 0, 0], [3, 2])]).isEmpty)
        // batch_dims = 1.
        #expect(try R.check("GatherND", inputs: [data, nil], constants: [1: Self.ints([1, 1, 3, 0, 0, 0], [3, 2, 1])],
                            attributes: [("batch_dims", .int(1))]).isEmpty)
    }

    // MARK: Expand, Tile

    @Test(arguments: [([3, 1], [2, 3, 4]), ([1], [2, 2]), ([2, 3], [2, 3]), ([2, 1, 3], [1, 4, 1]), ([], [3])] as [([Int], [Int])])
    func expand(_ c: ([Int], [Int])) throws {
        let x = R.random(c.0, seed: 23)
        let failures = try R.check("Expand", inputs: [x, nil], constants: [1: Self.ints(c.1)])
        #expect(failures.isEmpty, "\(c): \(failures.prefix(3))")
    }

    @Test(arguments: [([2, 3], [2, 1]), ([2, 1, 3], [1, 3, 2]), ([4], [3]), ([2, 2], [1, 1])] as [([Int], [Int])])
    func tile(_ c: ([Int], [Int])) throws {
        let x = R.random(c.0, seed: 24)
        let failures = try R.check("Tile", inputs: [x, nil], constants: [1: Self.ints(c.1)])
        #expect(failures.isEmpty, "\(c): \(failures.prefix(3))")
    }

    @Test func tileFloat32() throws {
        let x = R.random([3, 2], seed: 25, dtype: .float)
        #expect(try R.check("Tile", inputs: [x, nil], constants: [1: Self.ints([2, 3])]).isEmpty)
    }

    // MARK: Identity, Squeeze/Unsqueeze, Flatten

    @Test func identityAndShapeRelabels() throws {
        let x = R.random([2, 1, 3], seed: 26)
        #expect(try R.check("Identity", inputs: [x]).isEmpty)
        #expect(try R.check("Squeeze", inputs: [x], attributes: [("axes", .ints([1]))], opset: 11).isEmpty)
        #expect(try R.check("Squeeze", inputs: [x, nil], constants: [1: Self.ints([-2])]).isEmpty)
        #expect(try R.check("Squeeze", inputs: [x]).isEmpty)
        #expect(try R.check("Unsqueeze", inputs: [x], attributes: [("axes", .ints([0, 4]))], opset: 11).isEmpty)
        #expect(try R.check("Flatten", inputs: [x], attributes: [("axis", .int(-1))]).isEmpty)
        #expect(GradientRegistry.standard.vjp(op: "Identity") != nil)
    }

    // MARK: Trilu

    @Test(arguments: [true, false], [nil, 0, 1, -2, 9] as [Int?])
    func trilu(_ upper: Bool, _ k: Int?) throws {
        let x = R.random([2, 3, 4], seed: 27)
        let inputs: [NDArray?] = k == nil ? [x] : [x, nil]
        let constants: [Int: Tensor] = k.map { [1: Tensor(int64s: [Int64($0)], shape: [])] } ?? [:]
        let failures = try R.check("Trilu", inputs: inputs, constants: constants, attributes: [("upper", .int(upper ? 1 : 0))])
        #expect(failures.isEmpty, "upper \(upper) k \(String(describing: k)): \(failures.prefix(3))")
    }

    // MARK: Ops that make arrays from shapes

    @Test func rangeStartAndDelta() throws {
        // 6 elements: 0.3, 0.8, ..., 2.8; a small change of any input keeps the length.
        let start = NDArray([0.3], shape: []), limit = NDArray([2.9], shape: []), delta = NDArray([0.5], shape: [])
        let failures = try R.check("Range", inputs: [start, limit, delta])
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func eyeLikeGivesNoGradient() throws {
        let x = R.random([3, 4], seed: 28)
        #expect(try R.check("EyeLike", inputs: [x], attributes: [("k", .int(1))]).isEmpty)
    }

    /// A float path reshaped by a shape computed from the data (Shape → Gather → Concat →
    /// Reshape), plus Size, ConstantOfShape and NonZero → GatherND: the integer shape path is
    /// skipped, the float path differentiates.
    @Test func shapePathIsSkipped() throws {
        let b = GraphBuilder(name: "shapes")
        let x = b.input("x", .double, [2, 3, 4]), w = b.input("w", .double, [2, 3, 4])
        let xw = b.add(.mul, [x, w])
        let shape = b.add(OpType("Shape"), [xw])
        let batch = b.add(OpType("Gather"), [shape, b.initializer("zero", Self.ints([0]))], attributes: [("axis", .int(0))])
        let target = b.add(OpType("Concat"), [batch, b.initializer("minus1", Self.ints([-1]))], attributes: [("axis", .int(0))])
        let flat = b.add(OpType("Reshape"), [xw, target])                               // [2, 12]
        // ConstantOfShape(Shape(flat)) of 1.5 added: a float leaf made from an int path.
        let ones = b.add(OpType("ConstantOfShape"), [b.add(OpType("Shape"), [flat])],
                         attributes: [("value", .tensor(NDArray([1.5], shape: [1]).tensor()))])
        let shifted = b.add(.add, [flat, ones])
        // Size(x) only feeds an integer output.
        let size = b.add(OpType("Size"), [x])
        // NonZero(x) → Transpose → GatherND(x·w, ·): indices from the data, gradient through the gather.
        let nz = b.add(.transpose, [b.add(OpType("NonZero"), [x])], attributes: [("perm", .ints([1, 0]))])
        let picked = b.add(OpType("GatherND"), [xw, nz])
        b.output(shifted, picked, size)
        let model = b.model(opset: 18)
        let feeds = ["x": R.random([2, 3, 4], seed: 29), "w": R.random([2, 3, 4], seed: 30)]
        let failures = try R.checkGraph(model, feeds: feeds, wrt: ["x", "w"])
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }
}
