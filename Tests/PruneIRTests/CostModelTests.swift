import Foundation
import Testing

@testable import PruneIR

private func zeros(_ shape: [Int]) -> Tensor { Tensor(floats: Array(repeating: 0, count: shape.reduce(1, *)), shape: shape) }

@Test func convMACs() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [1, 3, 32, 32])
    let w = b.initializer("w", zeros([16, 3, 3, 3]))
    let bias = b.initializer("b", zeros([16]))
    let y = b.add(.conv, [x, w, bias], attributes: [("pads", .ints([1, 1, 1, 1]))])
    b.output(b.add(.relu, [y]))
    let model = b.model()
    ShapeInference().run(on: model)
    let costs = CostModel().costs(model)
    #expect(costs.count == 2)
    #expect(costs[0].macs == 1 * 16 * 32 * 32 * 3 * 9)
    #expect(costs[0].macs == 442_368)
    #expect(costs[0].params == 16 * 27 + 16)
    #expect(costs[1].macs == 0)
    #expect(costs[1].params == 0)
    #expect(CostModel().totalMACs(model) == 442_368)
}

@Test func groupedAndTransposedConvMACs() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [2, 8, 16, 16])
    // Depthwise-style grouping: 8 groups, each output channel sees 1 input channel.
    let dw = b.add(.conv, [x, b.initializer("w", zeros([8, 1, 3, 3]))], attributes: [("group", .int(8)), ("pads", .ints([1, 1, 1, 1]))])
    let grouped = b.add(.conv, [x, b.initializer("g", zeros([16, 4, 1, 1]))], attributes: [("group", .int(2))])
    let up = b.add(.convTranspose, [x, b.initializer("t", zeros([8, 4, 2, 2]))], attributes: [("strides", .ints([2, 2]))])
    b.output(dw, grouped, up)
    let model = b.model()
    ShapeInference().run(on: model)
    let macs = CostModel().costs(model).map(\.macs)
    #expect(macs[0] == 2 * 8 * 16 * 16 * 1 * 9)
    #expect(macs[1] == 2 * 16 * 16 * 16 * 4 * 1)
    #expect(macs[2] == 2 * 8 * 16 * 16 * 4 * 4)
}

@Test func matMulGemmAndEinsumMACs() {
    let b = GraphBuilder()
    let a = b.input("a", .float, [2, 1, 4, 8])
    let m = b.add(.matMul, [a, b.input("m", .float, [3, 8, 5])])
    let g = b.add(.gemm, [b.input("x", .float, [4, 8]), b.initializer("w", zeros([16, 8]))], attributes: [("transB", .int(1))])
    let e = b.add(.einsum, [b.input("q", .float, [2, 4, 10, 8]), b.input("k", .float, [2, 4, 12, 8])], attributes: [("equation", .string("bhqd,bhkd->bhqk"))])
    b.output(m, g, e)
    let model = b.model()
    ShapeInference().run(on: model)
    let costs = CostModel().costs(model)
    #expect(costs[0].macs == 2 * 3 * 4 * 5 * 8)
    #expect(costs[1].macs == 4 * 16 * 8)
    #expect(costs[1].params == 16 * 8)
    #expect(costs[2].macs == 2 * 4 * 10 * 12 * 8)
    #expect(CostModel().totalMACs(model) == 2 * 3 * 4 * 5 * 8 + 4 * 16 * 8 + 2 * 4 * 10 * 12 * 8)
}

@Test func totalMACsIsNilWhenAMACBearingNodeHasUnknownShapes() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [.symbol("batch"), .known(8)])
    let y = b.add(.matMul, [x, b.initializer("w", zeros([8, 4]))])
    b.output(y)
    let model = b.model()
    ShapeInference().run(on: model)
    #expect(CostModel().costs(model)[0].macs == nil)
    #expect(CostModel().totalMACs(model) == nil)
    ShapeInference(overrides: ["x": [3, 8]]).run(on: model)
    #expect(CostModel().totalMACs(model) == 3 * 8 * 4)
}

@Test func parameterCountIncludesInitializersAndLargeConstants() {
    let b = GraphBuilder()
    let x = b.input("x", .float, [1, 4])
    let w = b.initializer("w", zeros([4, 4]))
    let small = b.add(.constant, [], attributes: [("value", .tensor(Tensor(int64s: [1, 2], shape: [2])))])
    let big = b.add(.constant, [], attributes: [("value", .tensor(zeros([5, 5])))])
    let half = b.initializer("h", Tensor(name: "h", dtype: .float16, shape: [3], bytes: Data(count: 6)))
    b.output(b.add(.matMul, [x, w]), small, big, half)
    let model = b.model()
    #expect(CostModel.parameterCount(model) == 16 + 25 + 3)
    #expect(CostModel.parameterBytes(model) == 16 * 4 + 25 * 4 + 3 * 2)
}
