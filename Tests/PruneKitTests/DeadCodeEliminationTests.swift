import CleanupPasses
import PruneIR
import Testing

@testable import PruneKit

/// `dce` removes what nobody reads and keeps the model's interface.
@Suite struct DeadCodeEliminationTests {
    @Test func removesDeadChainsAndUnusedInitializers() throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [2])
        let w = b.initializer("w", Tensor(floats: [1, 2], shape: [2]))
        let unused = b.initializer("unused", Tensor(floats: [3], shape: [1]))
        _ = unused
        let dead = b.add(.relu, [b.add(.add, [x, w])])  // a chain nobody reads
        _ = dead
        let y = b.add(.identity, [x])
        b.output(y)
        let m = b.model()
        var r = PassRegistry()
        r.register(DeadCodeEliminationPass.self)
        let pm = try PassManager(pipeline: try Pipeline.parse("dce"), registry: r)
        pm.verifyEach = true
        let records = try pm.run(on: m, context: PassContext())
        #expect(m.graph.nodes.map(\.opType) == [.identity])
        #expect(m.graph.initializers.isEmpty)
        #expect(records[0].statistics["nodes-removed"] == 2 && records[0].statistics["initializers-removed"] == 2)
        // `w` is read by the dead chain, so it counts until dce; `unused` never counts (nothing reads it).
        #expect(records[0].before.params == 2 && records[0].after.params == 0)
        // A second run finds nothing.
        #expect(try pm.run(on: m, context: PassContext())[0].changed == false)
    }

    @Test func keepsInterfaceAndValuesReadBySubgraphs() throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [2])
        let c = b.input("c", .bool, [])
        let outer = b.add(.relu, [x])  // read only inside the branches
        let defaultInput = b.initializer("d", Tensor(floats: [0, 0], shape: [2]))
        b.graph.addInput(defaultInput)  // an initializer that is a graph input stays
        let thenB = GraphBuilder(name: "then")
        _ = thenB.add(OpType("Neg"), [outer])  // dead inside the branch
        thenB.output(thenB.add(.identity, [outer]))
        let elseB = GraphBuilder(name: "else")
        elseB.output(elseB.add(.identity, [x]))
        b.output(b.add(OpType("If"), [c], attributes: [("then_branch", .graph(thenB.graph)), ("else_branch", .graph(elseB.graph))]))
        let m = b.model()
        var r = PassRegistry()
        r.register(DeadCodeEliminationPass.self)
        let records = try PassManager(pipeline: try Pipeline.parse("dce"), registry: r).run(on: m, context: PassContext())
        #expect(m.graph.nodes.map(\.opType.name) == ["Relu", "If"])
        #expect(thenB.graph.nodes.map(\.opType) == [.identity])
        #expect(m.graph.initializers.count == 1)
        #expect(records[0].statistics["nodes-removed"] == 1)
    }
}
