import Foundation
import Testing

@testable import PruneIR

// MARK: - Helpers

private func ints(_ v: [Int64]) -> Tensor { Tensor(int64s: v, shape: [v.count]) }
private func floats(_ v: [Float]) -> Tensor { Tensor(floats: v, shape: [v.count]) }
private func zeros(_ shape: [Int]) -> Tensor { Tensor(floats: Array(repeating: 0, count: shape.reduce(1, *)), shape: shape) }
private func dims(_ v: Value) -> [Int]? { v.type?.shape?.staticDims }
private func shape(_ v: Value) -> Shape? { v.type?.shape }

@discardableResult
private func infer(_ b: GraphBuilder, opset: Int64 = 17, overrides: [String: Shape] = [:]) -> ShapeInferenceReport {
    ShapeInference(overrides: overrides).run(on: b.model(opset: opset))
}

// MARK: - Convolution and pooling

@Test func convWithPadsStridesDilationAndGroups() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [1, 8, 32, 32])
    let w = b.initializer("w", zeros([16, 4, 3, 3]))
    let y = b.add(.conv, [x, w], attributes: [
        ("group", .int(2)), ("strides", .ints([2, 2])), ("pads", .ints([1, 1, 1, 1])), ("dilations", .ints([2, 2])),
    ])
    // floor((32 + 2 - 5) / 2) + 1 = 15
    let plain = b.add(.conv, [x, b.initializer("w2", zeros([6, 8, 1, 1]))])
    let same = b.add(.conv, [x, w], attributes: [("group", .int(2)), ("auto_pad", .string("SAME_UPPER")), ("strides", .ints([3, 3]))])
    let valid = b.add(.conv, [x, w], attributes: [("group", .int(2)), ("auto_pad", .string("VALID"))])
    infer(b)
    #expect(dims(y) == [1, 16, 15, 15])
    #expect(dims(plain) == [1, 6, 32, 32])
    #expect(dims(same) == [1, 16, 11, 11])
    #expect(dims(valid) == [1, 16, 30, 30])
    #expect(y.type?.elementType == .float)
}

@Test func convKeepsSymbolicBatch() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [.symbol("N"), .known(3), .known(224), .known(224)])
    let w = b.initializer("w", zeros([64, 3, 7, 7]))
    let y = b.add(.conv, [x, w], attributes: [("strides", .ints([2, 2])), ("pads", .ints([3, 3, 3, 3]))])
    let p = b.add(.maxPool, [y], attributes: [("kernel_shape", .ints([3, 3])), ("strides", .ints([2, 2])), ("pads", .ints([1, 1, 1, 1]))])
    let g = b.add(.globalAveragePool, [p])
    infer(b)
    #expect(shape(y) == Shape([.symbol("N"), .known(64), .known(112), .known(112)]))
    #expect(shape(p) == Shape([.symbol("N"), .known(64), .known(56), .known(56)]))
    #expect(shape(g) == Shape([.symbol("N"), .known(64), .known(1), .known(1)]))
}

@Test func convTransposeOutputSize() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [1, 8, 16, 16])
    let w = b.initializer("w", zeros([8, 2, 4, 4]))
    // 2 * (16 - 1) + 0 + 4 - 2 = 32; output channels 2 * group 2 = 4
    let y = b.add(.convTranspose, [x, w], attributes: [("strides", .ints([2, 2])), ("pads", .ints([1, 1, 1, 1])), ("group", .int(2))])
    let z = b.add(.convTranspose, [x, w], attributes: [("strides", .ints([2, 2])), ("output_padding", .ints([1, 1]))])
    let o = b.add(.convTranspose, [x, w], attributes: [("strides", .ints([2, 2])), ("output_shape", .ints([33, 34]))])
    infer(b)
    #expect(dims(y) == [1, 4, 32, 32])
    #expect(dims(z) == [1, 2, 35, 35])
    #expect(dims(o) == [1, 2, 33, 34])
}

@Test func poolingCeilMode() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [1, 2, 32, 32])
    let floorPool = b.node(.maxPool, [x], attributes: [("kernel_shape", .ints([3, 3])), ("strides", .ints([2, 2]))], outputs: 2)
    let ceilPool = b.add(.maxPool, [x], attributes: [("kernel_shape", .ints([3, 3])), ("strides", .ints([2, 2])), ("ceil_mode", .int(1))])
    let x5 = b.input("x5", .float, [1, 1, 5, 5])
    let avg = b.add(.averagePool, [x5], attributes: [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2])), ("ceil_mode", .int(1))])
    // A last window that would start in the right padding is dropped.
    let dropped = b.add(.averagePool, [x5], attributes: [
        ("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2])), ("pads", .ints([0, 0, 1, 1])), ("ceil_mode", .int(1)),
    ])
    infer(b)
    #expect(dims(floorPool[0]) == [1, 2, 15, 15])
    #expect(dims(floorPool[1]) == [1, 2, 15, 15])
    #expect(floorPool[1].type?.elementType == .int64)
    #expect(dims(ceilPool) == [1, 2, 16, 16])
    #expect(dims(avg) == [1, 1, 3, 3])
    #expect(dims(dropped) == [1, 1, 3, 3])
}

// MARK: - Matrix products

@Test func matMulBatchedBroadcastAndVectors() {
    let b = GraphBuilder()
    let a = b.input("a", .float, [2, 1, 4, 8])
    let m = b.input("m", .float, [3, 8, 5])
    let y = b.add(.matMul, [a, m])
    let v = b.input("v", .float, [8])
    let vm = b.add(.matMul, [v, b.input("w", .float, [8, 5])])
    let mv = b.add(.matMul, [b.input("t", .float, [2, 4, 8]), v])
    let vv = b.add(.matMul, [v, v])
    let s = b.add(.matMul, [b.input("s", .float, [.symbol("batch"), .symbol("seq"), .known(64)]), b.initializer("p", zeros([64, 32]))])
    infer(b)
    #expect(dims(y) == [2, 3, 4, 5])
    #expect(dims(vm) == [5])
    #expect(dims(mv) == [2, 4])
    #expect(dims(vv) == [])
    #expect(shape(s) == Shape([.symbol("batch"), .symbol("seq"), .known(32)]))
}

@Test func gemmTransposes() {
    let b = GraphBuilder()
    let a = b.input("a", .float, [4, 8])
    let w = b.initializer("w", zeros([16, 8]))
    let y = b.add(.gemm, [a, w, b.initializer("c", zeros([16]))], attributes: [("transB", .int(1))])
    let at = b.input("at", .float, [8, 4])
    let z = b.add(.gemm, [at, b.initializer("w2", zeros([8, 3]))], attributes: [("transA", .int(1))])
    infer(b)
    #expect(dims(y) == [4, 16])
    #expect(dims(z) == [4, 3])
}

@Test func einsumAttentionScoresAndEllipsis() {
    let b = GraphBuilder()
    let q = b.input("q", .float, [2, 4, 10, 8])
    let k = b.input("k", .float, [2, 4, 12, 8])
    let y = b.add(.einsum, [q, k], attributes: [("equation", .string("bhqd,bhkd->bhqk"))])
    let e = b.add(.einsum, [b.input("x", .float, [5, 2, 3]), b.input("z", .float, [3, 7])], attributes: [("equation", .string("...ij,jk->...ik"))])
    let implicit = b.add(.einsum, [b.input("i", .float, [3, 4]), b.input("j", .float, [4, 6])], attributes: [("equation", .string("ij,jk"))])
    infer(b)
    #expect(dims(y) == [2, 4, 10, 12])
    #expect(dims(e) == [5, 2, 7])
    #expect(dims(implicit) == [3, 6])
}

// MARK: - Layout

@Test func reshapeWithZeroAndMinusOne() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3, 4])
    let y = b.add(.reshape, [x, b.initializer("s", ints([0, -1]))])
    let z = b.add(.reshape, [x, b.initializer("s2", ints([-1, 2, 2]))])
    let keepZero = b.add(.reshape, [b.input("e", .float, [0, 4]), b.initializer("s3", ints([0, 4]))], attributes: [("allowzero", .int(1))])
    infer(b, opset: 14)
    #expect(dims(y) == [2, 12])
    #expect(dims(z) == [6, 2, 2])
    #expect(dims(keepZero) == [0, 4])
}

@Test func shapeGatherUnsqueezeConcatReshapeChainWithSymbolicBatch() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [.symbol("batch"), .known(16), .known(64)])
    let s = b.add(.shape, [x])
    let n = b.add(.gather, [s, b.initializer("zero", Tensor.scalar(Int64(0)))], attributes: [("axis", .int(0))])
    let n1 = b.add(.unsqueeze, [n, b.initializer("ax", ints([0]))])
    let target = b.add(.concat, [n1, b.initializer("rest", ints([-1, 4, 16]))], attributes: [("axis", .int(0))])
    let y = b.add(.reshape, [x, target])
    // Back to [batch, 16, 64] with a target taken from the other direction.
    let t = b.add(.transpose, [y], attributes: [("perm", .ints([0, 2, 1, 3]))])
    let flat = b.add(.reshape, [t, b.initializer("s2", ints([0, 0, -1]))])
    infer(b, opset: 13)
    #expect(dims(s) == [3])
    #expect(s.type?.elementType == .int64)
    #expect(dims(n) == [])
    #expect(dims(target) == [4])
    #expect(shape(y) == Shape([.symbol("batch"), .known(16), .known(4), .known(16)]))
    #expect(shape(t) == Shape([.symbol("batch"), .known(4), .known(16), .known(16)]))
    #expect(shape(flat) == Shape([.symbol("batch"), .known(4), .known(256)]))
}

@Test func constantOfShapeRangeAndExpandFromShapes() {
    let b = GraphBuilder()
    let ids = b.input("ids", .int64, [.symbol("batch"), .symbol("seq")])
    let s = b.add(.shape, [ids])
    let seq = b.add(.gather, [s, b.initializer("one", Tensor.scalar(Int64(1)))])
    let r = b.add(OpType("Range"), [b.initializer("start", Tensor.scalar(Int64(0))), seq, b.initializer("delta", Tensor.scalar(Int64(1)))])
    let mask = b.add(.constantOfShape, [s], attributes: [("value", .tensor(Tensor(int64s: [1], shape: [1])))])
    let pos = b.add(.unsqueeze, [r, b.initializer("ax", ints([0]))])
    let e = b.add(.expand, [pos, s])
    let fixed = b.add(OpType("Range"), [b.initializer("a", Tensor.scalar(Int64(2))), b.initializer("l", Tensor.scalar(Int64(11))), b.initializer("d", Tensor.scalar(Int64(3)))])
    infer(b, opset: 13)
    #expect(shape(r) == Shape([.symbol("seq")]))
    #expect(shape(mask) == Shape([.symbol("batch"), .symbol("seq")]))
    #expect(mask.type?.elementType == .int64)
    #expect(shape(e) == Shape([.symbol("batch"), .symbol("seq")]))
    #expect(dims(fixed) == [3])
}

@Test func transposeDefaultReversesAxes() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3, 4])
    let y = b.add(.transpose, [x])
    let z = b.add(.transpose, [x], attributes: [("perm", .ints([1, 0, 2]))])
    infer(b)
    #expect(dims(y) == [4, 3, 2])
    #expect(dims(z) == [3, 2, 4])
}

@Test func sliceNegativeClampedAndStepped() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [10, 20])
    let last3 = b.add(.slice, [x, b.initializer("s", ints([-3])), b.initializer("e", ints([Int64.max])), b.initializer("a", ints([1]))])
    let reversed = b.add(.slice, [x, b.initializer("s2", ints([-1])), b.initializer("e2", ints([Int64.min])), b.initializer("a2", ints([0])), b.initializer("st2", ints([-1]))])
    let stepped = b.add(.slice, [x, b.initializer("s3", ints([1, 0])), b.initializer("e3", ints([100, -2])), b.initializer("a3", ints([0, 1])), b.initializer("st3", ints([3, 4]))])
    let sym = b.input("y", .float, [.symbol("batch"), .known(8)])
    let keep = b.add(.slice, [sym, b.initializer("s4", ints([2])), b.initializer("e4", ints([6])), b.initializer("a4", ints([-1]))])
    infer(b, opset: 13)
    #expect(dims(last3) == [10, 3])
    #expect(dims(reversed) == [10, 20])
    // axis 0: 1, 4, 7 -> 3; axis 1: 0, 4, 8, 12, 16 of [0, 18) -> 5
    #expect(dims(stepped) == [3, 5])
    #expect(shape(keep) == Shape([.symbol("batch"), .known(4)]))
}

@Test func sliceOpset9Attributes() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [4, 6])
    let y = b.add(.slice, [x], attributes: [("starts", .ints([1, -4])), ("ends", .ints([3, 1000]))])
    infer(b, opset: 9)
    #expect(dims(y) == [2, 4])
}

@Test func splitBySizesEquallyAndNumOutputs() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [6, 4])
    let bySizes = b.node(.split, [x, b.initializer("sp", ints([2, 4]))], outputs: 2)
    let equal = b.node(.split, [x], outputs: 3)
    let byAttr = b.node(.split, [x], attributes: [("axis", .int(1)), ("split", .ints([1, 3]))], outputs: 2)
    let x7 = b.input("x7", .float, [7])
    let uneven = b.node(.split, [x7], attributes: [("num_outputs", .int(3))], outputs: 3)
    infer(b, opset: 18)
    #expect(bySizes.map(dims) == [[2, 4], [4, 4]])
    #expect(equal.map(dims) == [[2, 4], [2, 4], [2, 4]])
    #expect(byAttr.map(dims) == [[6, 1], [6, 3]])
    #expect(uneven.map(dims) == [[3], [3], [1]])
}

@Test func squeezeAndUnsqueezeInBothOpsetStyles() {
    // Opset 11: axes are attributes.
    let b11 = GraphBuilder()
    let x = b11.input("x", .float, [1, 3, 1, 5])
    let sq = b11.add(.squeeze, [x], attributes: [("axes", .ints([0, -2]))])
    let sqAll = b11.add(.squeeze, [x])
    let un = b11.add(.unsqueeze, [sq], attributes: [("axes", .ints([0, 3]))])
    infer(b11, opset: 11)
    #expect(dims(sq) == [3, 5])
    #expect(dims(sqAll) == [3, 5])
    #expect(dims(un) == [1, 3, 5, 1])

    // Opset 13: axes are inputs.
    let b13 = GraphBuilder()
    let y = b13.input("y", .float, [.symbol("n"), .known(1), .known(4)])
    let sq13 = b13.add(.squeeze, [y, b13.initializer("a", ints([1]))])
    let un13 = b13.add(.unsqueeze, [sq13, b13.initializer("b", ints([-1, 1]))])
    infer(b13, opset: 13)
    #expect(shape(sq13) == Shape([.symbol("n"), .known(4)]))
    #expect(shape(un13) == Shape([.symbol("n"), .known(1), .known(4), .known(1)]))
}

@Test func concatSumsTheAxis() {
    let b = GraphBuilder()
    let y = b.add(.concat, [b.input("a", .float, [2, 3]), b.input("b", .float, [2, 5])], attributes: [("axis", .int(-1))])
    let s = b.add(.concat, [
        b.input("c", .float, [.symbol("batch"), .known(3)]), b.input("d", .float, [.symbol("batch"), .known(4)]),
    ], attributes: [("axis", .int(1))])
    let t = b.add(.concat, [
        b.input("e", .float, [.symbol("seq"), .known(3)]), b.input("f", .float, [.known(2), .known(3)]),
    ], attributes: [("axis", .int(0))])
    infer(b)
    #expect(dims(y) == [2, 8])
    #expect(shape(s) == Shape([.symbol("batch"), .known(7)]))
    #expect(shape(t) == Shape([.unknown, .known(3)]))
}

@Test func gatherFlattenPadTileAndFriends() {
    let b = GraphBuilder()
    let emb = b.initializer("emb", zeros([100, 16]))
    let ids = b.input("ids", .int64, [.symbol("batch"), .symbol("seq")])
    let g = b.add(.gather, [emb, ids])
    let x = b.input("x", .float, [2, 3, 4, 5])
    let f = b.add(.flatten, [x], attributes: [("axis", .int(2))])
    let p = b.add(OpType("Pad"), [x, b.initializer("pads", ints([0, 0, 1, 2, 0, 0, 3, 4]))])
    let t = b.add(OpType("Tile"), [x, b.initializer("reps", ints([1, 2, 1, 3]))])
    let gnd = b.add(OpType("GatherND"), [x, b.input("idx", .int64, [7, 2])])
    let ge = b.add(OpType("GatherElements"), [x, b.input("ie", .int64, [2, 3, 4, 1])], attributes: [("axis", .int(3))])
    infer(b, opset: 13)
    #expect(shape(g) == Shape([.symbol("batch"), .symbol("seq"), .known(16)]))
    #expect(dims(f) == [6, 20])
    #expect(dims(p) == [2, 3, 8, 11])
    #expect(dims(t) == [2, 6, 4, 15])
    #expect(dims(gnd) == [7, 4, 5])
    #expect(dims(ge) == [2, 3, 4, 1])
}

@Test func productsOfSymbolsRoundTrip() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [.symbol("batch"), .symbol("seq"), .known(4)])
    let flat = b.add(.flatten, [x], attributes: [("axis", .int(2))])
    let all = b.add(.reshape, [x, b.initializer("m1", ints([-1]))])
    let s = b.add(.shape, [x])
    let n = b.add(.gather, [s, b.initializer("zero", ints([0]))])
    let target = b.add(.concat, [n, b.initializer("rest", ints([-1, 4]))], attributes: [("axis", .int(0))])
    let back = b.add(.reshape, [flat, target])
    infer(b, opset: 13)
    #expect(shape(flat) == Shape([.symbol("batch*seq"), .known(4)]))
    #expect(shape(all) == Shape([.symbol("4*batch*seq")]))
    #expect(shape(back) == Shape([.symbol("batch"), .symbol("seq"), .known(4)]))
}

@Test func overridesResolveProductsOfBoundSymbols() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [.symbol("batch"), .symbol("seq")])
    let r = b.add(.relu, [x])
    let f = b.add(OpType("Foo", domain: "com.example"), [x])
    f.type = .tensor(.float, Shape([.symbol("batch*seq")]))
    infer(b, overrides: ["x": [2, 5]])
    #expect(dims(r) == [2, 5])
    #expect(dims(f) == [10])
}

// MARK: - Element-wise

@Test func broadcastingWithSymbols() {
    let b = GraphBuilder()
    let a = b.input("a", .float, [.symbol("batch"), .known(1), .known(64)])
    let c = b.input("c", .float, [.known(1), .symbol("seq"), .known(64)])
    let sum = b.add(.add, [a, c])
    let same = b.add(.mul, [b.input("p", .float, [.symbol("batch")]), b.input("q", .float, [.symbol("batch")])])
    let different = b.add(.sub, [b.input("r", .float, [.symbol("batch")]), b.input("s", .float, [.symbol("other")])])
    let numberWins = b.add(.add, [b.input("u", .float, [.symbol("n")]), b.input("v", .float, [.known(5)])])
    let cmp = b.add(OpType("Less"), [a, b.initializer("k", Tensor.scalar(Float(0)))])
    let w = b.add(OpType("Where"), [cmp, a, c])
    infer(b)
    #expect(shape(sum) == Shape([.symbol("batch"), .symbol("seq"), .known(64)]))
    #expect(shape(same) == Shape([.symbol("batch")]))
    #expect(shape(different) == Shape([.unknown]))
    #expect(dims(numberWins) == [5])
    #expect(cmp.type?.elementType == .bool)
    #expect(shape(cmp) == shape(a))
    #expect(shape(w) == Shape([.symbol("batch"), .symbol("seq"), .known(64)]))
    #expect(w.type?.elementType == .float)
}

@Test func unaryCastAndDropout() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3])
    let r = b.add(.relu, [b.add(.sigmoid, [b.add(.erf, [x])])])
    let c = b.add(.cast, [x], attributes: [("to", .int(Int64(DType.float16.rawValue)))])
    let d = b.node(OpType("Dropout"), [x], outputs: 2)
    let nan = b.add(OpType("IsNaN"), [x])
    infer(b)
    #expect(dims(r) == [2, 3])
    #expect(c.type == .tensor(.float16, [2, 3]))
    #expect(d[0].type == .tensor(.float, [2, 3]))
    #expect(d[1].type == .tensor(.bool, [2, 3]))
    #expect(nan.type == .tensor(.bool, [2, 3]))
}

// MARK: - Normalizations, resize, reductions

@Test func normalizationOutputs() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 5, 8])
    let ln = b.node(.layerNormalization, [x, b.initializer("g", zeros([8])), b.initializer("bb", zeros([8]))], attributes: [("axis", .int(-1))], outputs: 3)
    let bnIn = b.input("img", .float, [1, 4, 6, 6])
    let c4 = zeros([4])
    let bn = b.add(.batchNormalization, [bnIn, b.initializer("s", c4), b.initializer("o", c4), b.initializer("m", c4), b.initializer("v", c4)])
    let gn = b.add(.groupNormalization, [bnIn, b.initializer("gs", c4), b.initializer("gb", c4)], attributes: [("num_groups", .int(2))])
    let sm = b.add(.softmax, [x], attributes: [("axis", .int(-1))])
    infer(b, opset: 18)
    #expect(dims(ln[0]) == [2, 5, 8])
    #expect(dims(ln[1]) == [2, 5, 1])
    #expect(dims(ln[2]) == [2, 5, 1])
    #expect(dims(bn) == [1, 4, 6, 6])
    #expect(dims(gn) == [1, 4, 6, 6])
    #expect(dims(sm) == [2, 5, 8])
}

@Test func resizeByScalesAndSizes() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [1, 3, 16, 16])
    let empty = b.initializer("roi", Tensor(floats: [], shape: [0]))
    let up = b.add(.resize, [x, empty, b.initializer("scales", floats([1, 1, 2, 2]))], attributes: [("mode", .string("nearest"))])
    let sized = b.add(.resize, [x, empty, b.initializer("none", Tensor(floats: [], shape: [0])), b.initializer("sizes", ints([1, 3, 24, 20]))])
    let old = b.add(OpType("Upsample"), [x, b.initializer("s9", floats([1, 1, 3, 3]))])
    let y = b.input("y", .float, [.symbol("n"), .known(8), .known(10), .known(10)])
    let sym = b.add(.resize, [y, empty, b.initializer("s2", floats([1, 1, 0.5, 0.5]))])
    infer(b, opset: 13)
    #expect(dims(up) == [1, 3, 32, 32])
    #expect(dims(sized) == [1, 3, 24, 20])
    #expect(dims(old) == [1, 3, 48, 48])
    #expect(shape(sym) == Shape([.symbol("n"), .known(8), .known(5), .known(5)]))
}

@Test func reductionsArgMaxAndTopK() {
    // Opset 13: axes attribute for ReduceMean, input for ReduceSum.
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3, 4])
    let mean = b.add(OpType("ReduceMean"), [x], attributes: [("axes", .ints([-1]))])
    let sum = b.add(OpType("ReduceSum"), [x, b.initializer("ax", ints([0, 2]))], attributes: [("keepdims", .int(0))])
    let all = b.add(OpType("ReduceMax"), [x], attributes: [("keepdims", .int(0))])
    let arg = b.add(OpType("ArgMax"), [x], attributes: [("axis", .int(1)), ("keepdims", .int(0))])
    let topk = b.node(OpType("TopK"), [x, b.initializer("k", ints([2]))], outputs: 2)
    infer(b, opset: 13)
    #expect(dims(mean) == [2, 3, 1])
    #expect(dims(sum) == [3])
    #expect(dims(all) == [])
    #expect(arg.type == .tensor(.int64, [2, 4]))
    #expect(dims(topk[0]) == [2, 3, 2])
    #expect(topk[1].type?.elementType == .int64)

    // Opset 18: axes input for every reduction; empty axes with noop keep the input.
    let b18 = GraphBuilder()
    let y = b18.input("y", .float, [2, 3, 4])
    let m18 = b18.add(OpType("ReduceMean"), [y, b18.initializer("a", ints([1]))])
    let noop = b18.add(OpType("ReduceMean"), [y], attributes: [("noop_with_empty_axes", .int(1))])
    infer(b18, opset: 18)
    #expect(dims(m18) == [2, 1, 4])
    #expect(dims(noop) == [2, 3, 4])
}

// MARK: - Unknown ops, robustness, overrides

@Test func unknownOpLeavesOutputsUnknownAndIsReported() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3])
    let foo = b.add(OpType("Foo", domain: "com.example"), [x])
    let after = b.add(.relu, [foo])
    let bar = b.add(OpType("Bar", domain: "com.example"), [x])
    bar.type = .tensor(.float, [4, 5])  // as if from value_info
    let afterTyped = b.add(.relu, [bar])
    let report = infer(b)
    #expect(foo.type == nil)
    #expect(after.type == nil)
    #expect(bar.type == .tensor(.float, [4, 5]))
    #expect(afterTyped.type == .tensor(.float, [4, 5]))
    #expect(report.opsWithoutRule == ["com.example.Foo": 1, "com.example.Bar": 1])
    #expect(report.unresolved["Relu"] == 1)
}

@Test func malformedNodesDoNotCrash() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3])
    _ = b.add(.conv, [x, x], attributes: [("strides", .string("oops")), ("pads", .ints([1]))])
    _ = b.add(.reshape, [x, b.initializer("bad", ints([-1, -1, 7]))])
    _ = b.add(.transpose, [x], attributes: [("perm", .ints([5, -9]))])
    _ = b.add(.gather, [x, b.initializer("i", ints([99]))], attributes: [("axis", .int(12))])
    _ = b.add(.slice, [x, b.initializer("s", ints([Int64.min])), b.initializer("e", ints([Int64.max])), b.initializer("a", ints([0])), b.initializer("st", ints([0]))])
    _ = b.add(.concat, [])
    _ = b.add(.split, [x, b.initializer("sp", ints([1]))])
    _ = b.add(.einsum, [x], attributes: [("equation", .string("i..j,->"))])
    _ = b.add(OpType("Range"), [b.initializer("r0", Tensor.scalar(Int64(0))), b.initializer("r1", Tensor.scalar(Int64.max)), b.initializer("r2", Tensor.scalar(Int64(0)))])
    _ = b.add(.div, [b.initializer("d0", ints([Int64.min])), b.initializer("d1", ints([-1]))])
    _ = b.add(.unsqueeze, [x, b.initializer("u", ints([0, 0]))])
    _ = b.add(.maxPool, [x])
    let report = infer(b, opset: 13)
    #expect(report.values > 0)
}

@Test func overridesBindSymbolsEverywhere() {
    let b = GraphBuilder()
    let ids = b.input("input_ids", .int64, [.symbol("batch"), .symbol("sequence")])
    let mask = b.input("attention_mask", .int64, [.symbol("batch"), .symbol("sequence")])
    let sum = b.add(.add, [ids, mask])
    sum.type = .tensor(.int64, Shape([.symbol("batch"), .symbol("sequence")]))
    let report = infer(b, overrides: ["input_ids": [1, 16], "nope": [3]])
    #expect(ids.type == .tensor(.int64, [1, 16]))
    #expect(mask.type == .tensor(.int64, [1, 16]))
    #expect(sum.type == .tensor(.int64, [1, 16]))
    #expect(report.unknownOverrides == ["nope"])
    #expect(report.staticShapes == 1)
}

@Test func existingTypesKeptUnlessInferredIsMoreSpecific() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [.symbol("n"), .known(4)])
    let r = b.add(.relu, [x])
    r.type = .tensor(.float, Shape([.known(7), .unknown]))
    infer(b)
    // The known 7 stays (more specific than the symbol), the unknown dim gets the number.
    #expect(shape(r) == Shape([.known(7), .known(4)]))
}

// MARK: - Control flow

@Test func ifWithAgreeingBranches() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3])
    let cond = b.input("cond", .bool, [Int]())

    let thenGraph = Graph(name: "then")
    let t = Node(.relu, name: "t", inputs: [x], outputs: ["t_out"])
    thenGraph.append(t)
    thenGraph.outputs = [t.outputs[0]]

    let elseGraph = Graph(name: "else")
    let e = Node(.sigmoid, name: "e", inputs: [x], outputs: ["e_out"])
    elseGraph.append(e)
    let e2 = Node(.transpose, name: "e2", inputs: [x], outputs: ["e2_out"])
    elseGraph.append(e2)
    elseGraph.outputs = [e.outputs[0], e2.outputs[0]]
    let t2 = Node(.identity, name: "t2", inputs: [x], outputs: ["t2_out"])
    thenGraph.append(t2)
    thenGraph.outputs.append(t2.outputs[0])

    let y = b.node(.if, [cond], attributes: [("then_branch", .graph(thenGraph)), ("else_branch", .graph(elseGraph))], outputs: 2)
    infer(b)
    #expect(t.outputs[0].type == .tensor(.float, [2, 3]))
    #expect(y[0].type == .tensor(.float, [2, 3]))
    // [2, 3] vs [3, 2]: same rank, dims differ.
    #expect(y[1].type == .tensor(.float, Shape([.unknown, .unknown])))
}

@Test func loopCarriesShapes() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [4])
    let body = Graph(name: "body")
    let iter = Value(name: "i")
    let condIn = Value(name: "c_in")
    let carried = Value(name: "v_in")
    body.addInput(iter)
    body.addInput(condIn)
    body.addInput(carried)
    let step = Node(.add, name: "step", inputs: [carried, carried], outputs: ["v_out"])
    body.append(step)
    let keep = Node(.identity, name: "keep", inputs: [condIn], outputs: ["c_out"])
    body.append(keep)
    let scanOut = Node(.relu, name: "scan", inputs: [carried], outputs: ["s_out"])
    body.append(scanOut)
    body.outputs = [keep.outputs[0], step.outputs[0], scanOut.outputs[0]]
    let out = b.node(.loop, [b.initializer("m", Tensor.scalar(Int64(3))), nil, x], attributes: [("body", .graph(body))], outputs: 2)
    infer(b)
    #expect(carried.type == .tensor(.float, [4]))
    #expect(out[0].type == .tensor(.float, [4]))
    #expect(out[1].type == .tensor(.float, [3, 4]))
}

@Test func scanAddsTheIterationAxis() {
    let b = GraphBuilder()
    let state = b.input("state", .float, [2])
    let xs = b.input("xs", .float, [5, 3])
    let body = Graph(name: "body")
    let sIn = Value(name: "s_in")
    let xIn = Value(name: "x_in")
    body.addInput(sIn)
    body.addInput(xIn)
    let keep = Node(.identity, name: "keep", inputs: [sIn], outputs: ["s_out"])
    body.append(keep)
    let act = Node(.relu, name: "act", inputs: [xIn], outputs: ["y"])
    body.append(act)
    body.outputs = [keep.outputs[0], act.outputs[0]]
    let out = b.node(.scan, [state, xs], attributes: [("body", .graph(body)), ("num_scan_inputs", .int(1))], outputs: 2)
    infer(b, opset: 11)
    #expect(xIn.type == .tensor(.float, [3]))
    #expect(out[0].type == .tensor(.float, [2]))
    #expect(out[1].type == .tensor(.float, [5, 3]))
}

@Test func ifWithKnownConditionTakesItsBranch() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 3])
    let thenGraph = Graph(name: "then")
    let t = Node(.transpose, name: "t", inputs: [x], outputs: ["t_out"])
    thenGraph.append(t)
    thenGraph.outputs = [t.outputs[0]]
    let elseGraph = Graph(name: "else")
    let e = Node(.identity, name: "e", inputs: [x], outputs: ["e_out"])
    elseGraph.append(e)
    elseGraph.outputs = [e.outputs[0]]
    let cond = b.initializer("cond", Tensor(name: "cond", dtype: .bool, shape: [], bytes: Data([1])))
    let y = b.add(.if, [cond], attributes: [("then_branch", .graph(thenGraph)), ("else_branch", .graph(elseGraph))])
    infer(b)
    #expect(y.type == .tensor(.float, [3, 2]))
}

// MARK: - Example models

private let examplesFolder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("examples/models")

private let exampleModels: [String] = {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: examplesFolder.path)) ?? []
    return files.filter { $0.hasSuffix(".onnx") }.sorted()
}()

/// Output shapes the manifest lists for a model file: output name → dims (numbers or symbols).
private func manifestOutputs(_ file: String) -> [String: Shape] {
    guard let data = try? Data(contentsOf: examplesFolder.appendingPathComponent("manifest.json")),
        let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
        let models = json["models"] as? [[String: Any]],
        let entry = models.first(where: { $0["file"] as? String == file }),
        let outputs = entry["outputs"] as? [[String: Any]]
    else { return [:] }
    var out: [String: Shape] = [:]
    for o in outputs {
        guard let name = o["name"] as? String, let dims = o["shape"] as? [Any] else { continue }
        out[name] = Shape(dims.map { d -> Dim in
            if let n = d as? Int { return .known(n) }
            if let s = d as? String { return .symbol(s) }
            return .unknown
        })
    }
    return out
}

/// Clears the type of every node output (all graphs), so inference starts from the graph inputs
/// alone; returns the types the file declared, by value name.
private func clearNodeOutputTypes(_ graph: Graph) -> [String: ValueType] {
    var declared: [String: ValueType] = [:]
    for node in graph.nodes {
        for o in node.outputs {
            if let t = o.type { declared[o.name] = t }
            o.type = nil
        }
        for g in node.subgraphs { declared.merge(clearNodeOutputTypes(g)) { a, _ in a } }
    }
    return declared
}

@Test func exampleModelsAreFound() {
    #expect(exampleModels.count >= 10)
}

@Test(arguments: exampleModels)
func exampleModelGetsStaticShapes(_ file: String) throws {
    let model = try ModelImporter.load(contentsOf: examplesFolder.appendingPathComponent(file))
    let declared = clearNodeOutputTypes(model.graph)
    // Bind symbolic input dims (bert) to the calibration shapes.
    var overrides: [String: Shape] = [:]
    for input in model.graph.inputs where input.initializer == nil {
        guard let s = input.type?.shape, s.staticDims == nil else { continue }
        overrides[input.name] = Shape(s.dims.enumerated().map { i, d in d.value ?? (i == 0 ? 1 : 16) })
    }
    let report = ShapeInference(overrides: overrides).run(on: model)
    #expect(report.opsWithoutRule.isEmpty, "\(file): no rule for \(report.opsWithoutRule)")
    #expect(report.unresolved.isEmpty, "\(file): unresolved \(report.unresolved)")
    #expect(report.staticShapes == report.values, "\(file): \(report.values - report.staticShapes) values without a static shape")

    let expected = manifestOutputs(file)
    #expect(!expected.isEmpty)
    for output in model.graph.outputs {
        #expect(output.type?.shape?.staticDims != nil, "\(file): output \(output.name) is \(String(describing: output.type))")
        if let e = expected[output.name] {
            let bound = Shape(e.dims.map { d -> Dim in
                if case .symbol(let s) = d { return .known(s == "batch" ? 1 : 16) }
                return d
            })
            #expect(output.type?.shape == bound, "\(file): output \(output.name)")
        }
    }
    // Where the exporter declared fully static types, inference agrees with them.
    var mismatches: [String] = []
    for node in model.graph.allNodes {
        for o in node.outputs {
            guard let d = declared[o.name], case .tensor(_, let s?) = d, s.staticDims != nil else { continue }
            if o.type != d { mismatches.append("\(o.name): declared \(d), inferred \(String(describing: o.type))") }
        }
    }
    #expect(mismatches.isEmpty, "\(file): \(mismatches.prefix(5))")

    let macs = CostModel().totalMACs(model)
    #expect(macs != nil && macs! > 0, "\(file): MACs \(String(describing: macs))")
    // MACs from the shapes onnxruntime produces on the calibration inputs (batch 1, sequence 16).
    let expectedMACs = ["resnet": 21_938_816, "bert": 1_118_208, "llama": 2_400_256, "unet": 94_855_168, "dit": 475_392]
    if let base = file.split(separator: ".").first, let e = expectedMACs[String(base)] {
        #expect(macs == e, "\(file)")
    }
    // A second run finds nothing new.
    #expect(ShapeInference().run(on: model).inferred == 0)
    let initializerElements = model.graph.initializers.reduce(0) { $0 + ($1.initializer?.elementCount ?? 0) }
    #expect(CostModel.parameterCount(model) >= initializerElements)
}

@Test(arguments: ["bert.onnx", "bert.dynamo.onnx"])
func bertKeepsSymbolicDims(_ file: String) throws {
    let model = try ModelImporter.load(contentsOf: examplesFolder.appendingPathComponent(file))
    _ = clearNodeOutputTypes(model.graph)
    let report = ShapeInference().run(on: model)
    #expect(report.opsWithoutRule.isEmpty)
    let outputs = Dictionary(uniqueKeysWithValues: model.graph.outputs.map { ($0.name, $0.type?.shape) })
    #expect(outputs["last_hidden_state"] == Shape([.symbol("batch"), .symbol("sequence"), .known(64)]))
    #expect(outputs["pooler_output"] == Shape([.symbol("batch"), .known(64)]))
}
