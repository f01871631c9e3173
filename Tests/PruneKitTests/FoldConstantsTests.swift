import CleanupPasses
import PruneIR
import PruneRuntime
import Testing

@testable import PruneKit

/// `fold-constants` then `dce`: constant arithmetic becomes initializers, outputs stay the same.
@Suite struct FoldConstantsTests {
    @Test func constantChainsBecomeInitializersWithTheSameOutputs() throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [2])
        let c1 = b.initializer("c1", Tensor(floats: [1, 2], shape: [2]))
        let c2 = b.initializer("c2", Tensor(floats: [10, 20], shape: [2]))
        let scale = b.add(.mul, [b.add(.add, [c1, c2]), c1])  // (c1 + c2) * c1 = [11, 44]
        let y = b.add(.mul, [x, scale])
        b.output(y)
        let m = b.model()
        let input = NDArray([Float(1), -2], shape: [2])
        let before = try Interpreter(model: m, options: .init(foldConstants: false)).run(["x": input])[y.name]!.scalars(as: Float.self)

        var r = PassRegistry()
        r.register(FoldConstantsPass.self)
        r.register(DeadCodeEliminationPass.self)
        let pm = try PassManager(pipeline: try Pipeline.parse("fold-constants,dce"), registry: r)
        pm.verifyEach = true
        let records = try pm.run(on: m, context: PassContext())
        #expect(records[0].statistics["nodes-folded"] == 2)
        #expect(m.graph.nodes.map(\.opType) == [.mul])
        #expect(m.graph.initializers.count == 1)
        #expect(try m.graph.initializers[0].initializer!.floats() == [11, 44])
        let after = try Interpreter(model: m, options: .init(foldConstants: false)).run(["x": input])[y.name]!.scalars(as: Float.self)
        #expect(after == before && after == [11, -88])
    }

    @Test func largeResultsAndGraphOutputsStay() throws {
        let b = GraphBuilder()
        let shape = b.initializer("shape", Tensor(int64s: [1024, 1024], shape: [2]))
        let big = b.add(OpType("ConstantOfShape"), [shape])  // 4 MiB from 16 bytes
        let x = b.input("x", .float, [1024, 1024])
        let sum = b.add(.add, [x, big])
        let c = b.initializer("c", Tensor(floats: [1], shape: [1]))
        let out = b.add(OpType("Neg"), [c])  // constant, but a graph output
        b.output(sum, out)
        let m = b.model()
        var r = PassRegistry()
        r.register(FoldConstantsPass.self)
        let records = try PassManager(pipeline: try Pipeline.parse("fold-constants"), registry: r).run(on: m, context: PassContext())
        #expect(records[0].changed == false)
        #expect(m.graph.nodes.count == 3)
    }
}
