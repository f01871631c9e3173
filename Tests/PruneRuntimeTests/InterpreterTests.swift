import Foundation
import PruneIR
import Testing

@testable import PruneRuntime

/// The interpreter's machinery, with kernels registered by the test itself so that it does not
/// depend on the standard kernels: error reporting, input checks, liveness and buffer reuse,
/// constant folding, opset resolution and subgraph captures.
@Suite struct InterpreterTests {
    /// `AddOne`: y = x + 1 (float), counting its calls.
    final class Counter: @unchecked Sendable { var calls = 0 }

    static func registry(counter: Counter = Counter()) -> KernelRegistry {
        var r = KernelRegistry()
        r.register("Identity", since: 1) { _ in ClosureKernel { ins, _ in [try ins.required(0)] } }
        r.register("Shape", since: 1) { _ in
            ClosureKernel { ins, _ in [NDArray(try ins.required(0).shape.map { Int64($0) }, shape: [try ins.required(0).rank])] }
        }
        r.register("SumInts", domain: "test", since: 1) { _ in
            ClosureKernel { ins, _ in
                counter.calls += 1
                return [NDArray(scalar: Int64(try ins.required(0).ints().reduce(0, +)))]
            }
        }
        r.register("AddOne", domain: "test", since: 1) { _ in
            ClosureKernel { ins, ctx in
                counter.calls += 1
                let x = try ins.required(0)
                let y = ctx.allocate(.float, x.shape)
                for i in 0..<x.count { y.pointer(as: Float.self)[i] = x.pointer(as: Float.self)[i] + 1 }
                return [y]
            }
        }
        // Version 1 returns 1, version 13 returns 13: which one runs shows the opset resolution.
        for v in [1, 13] {
            r.register("Version", domain: "", since: v) { _ in ClosureKernel { _, _ in [NDArray(scalar: Float(v))] } }
        }
        r.register("If", since: 1) { info in
            let thenBranch = try info.attribute("then_branch", as: Graph.self)!
            let elseBranch = try info.attribute("else_branch", as: Graph.self)!
            return ClosureKernel { ins, ctx in
                let cond = try ins.required(0).pointer(as: Bool.self)[0]
                return try ctx.run(subgraph: cond ? thenBranch : elseBranch, inputs: []).map { $0 }
            }
        }
        return r
    }

    static let addOne = OpType("AddOne", domain: "test")

    func model(_ b: GraphBuilder, opset: Int64 = 17) -> Model {
        let m = b.model(opset: opset)
        m.opsetImports = m.opsetImports + [OpsetImport(domain: "test", version: 1)]
        return m
    }

    @Test func unsupportedNodesAreAllReportedBeforeAnythingRuns() throws {
        let counter = Counter()
        let b = GraphBuilder()
        let x = b.input("x", .float, [2])
        let a = b.add(InterpreterTests.addOne, [x], name: "first")
        let c = b.add(OpType("Frobnicate"), [a], name: "frob")
        let inner = GraphBuilder(name: "then")
        let t = inner.add(OpType("Zap"), [c], name: "zap_in_branch")
        inner.output(t)
        let other = GraphBuilder(name: "else")
        other.output(other.add(.identity, [c]))
        let cond = b.initializer("cond", Tensor(name: "cond", dtype: .bool, shape: [], bytes: Data([1])))
        let y = b.add(OpType("If"), [cond], attributes: [("then_branch", .graph(inner.graph)), ("else_branch", .graph(other.graph))])
        b.output(y)
        #expect {
            _ = try Interpreter(model: model(b), registry: InterpreterTests.registry(counter: counter))
        } throws: { error in
            guard case RuntimeError.unsupportedNodes(let nodes) = error else { return false }
            return Set(nodes.map(\.node)) == ["frob", "zap_in_branch"] && nodes.allSatisfy { $0.reason == "operator not implemented" }
        }
        #expect(counter.calls == 0)
    }

    @Test func inputsAreCheckedByName() throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [.symbol("batch"), .known(3)])
        let z = b.input("z", .float, [.symbol("batch")])
        b.output(b.add(.identity, [x]), b.add(.identity, [z]))
        let interp = try Interpreter(model: model(b), registry: InterpreterTests.registry())
        let good = NDArray([Float](repeating: 0, count: 6), shape: [2, 3])
        let zGood = NDArray([Float](repeating: 0, count: 2), shape: [2])
        func message(_ inputs: [String: NDArray]) -> String {
            do { _ = try interp.run(inputs); return "ok" } catch { return "\(error)" }
        }
        #expect(message(["x": good, "z": zGood]) == "ok")
        #expect(message(["x": good]).contains("missing input 'z'"))
        #expect(message(["x": good, "z": zGood, "w": zGood]).contains("'w' is not an input"))
        #expect(message(["x": NDArray([Int64](repeating: 0, count: 6), shape: [2, 3]), "z": zGood]).contains("element type int64"))
        #expect(message(["x": NDArray([Float](repeating: 0, count: 6), shape: [6]), "z": zGood]).contains("rank 2"))
        #expect(message(["x": NDArray([Float](repeating: 0, count: 8), shape: [2, 4]), "z": zGood]).contains("dimension 1 must be 3"))
        #expect(message(["x": good, "z": NDArray([Float](repeating: 0, count: 5), shape: [5])]).contains("'batch'"))
    }

    @Test func deadValuesReturnTheirMemoryToTheArena() throws {
        // A chain of 16 steps over 1 MiB tensors: without reuse that is 16 MiB of intermediates;
        // with liveness, two blocks (the value being read and the one being written) suffice.
        let b = GraphBuilder()
        var v = b.input("x", .float, [262_144])
        for _ in 0..<16 { v = b.add(InterpreterTests.addOne, [v]) }
        b.output(v)
        let interp = try Interpreter(model: model(b), registry: InterpreterTests.registry())
        let x = NDArray([Float](repeating: 1, count: 262_144), shape: [262_144])
        interp.pool.resetCounters()
        do {
            let y = try interp.run(["x": x])[v.name]!
            #expect(y.pointer(as: Float.self)[1000] == 17)
            #expect(interp.pool.requestedBytes == 16 * 1_048_576)
            #expect(interp.pool.reservedBytes <= 2 * 1_048_576 + 4096)
        }
        // Once the caller dropped the output, a second run reuses the arena: nothing new is reserved.
        let before = interp.pool.reservedBytes
        _ = try interp.run(["x": x])
        #expect(interp.pool.reservedBytes == before)
    }

    @Test func constantChainsAreFoldedOnce() throws {
        let counter = Counter()
        let b = GraphBuilder()
        let x = b.input("x", .float, [4])
        let c = b.initializer("c", Tensor(floats: [1, 2, 3, 4], shape: [4]))
        let c2 = b.add(InterpreterTests.addOne, [b.add(InterpreterTests.addOne, [c])])
        let y = b.add(InterpreterTests.addOne, [x])
        b.output(y, c2)
        let interp = try Interpreter(model: model(b), registry: InterpreterTests.registry(counter: counter))
        #expect(interp.foldedSteps == 2)
        #expect(counter.calls == 2)
        let out = try interp.run(["x": NDArray([Float](repeating: 0, count: 4), shape: [4])])
        #expect(out[c2.name]!.scalars(as: Float.self) == [3, 4, 5, 6])
        #expect(counter.calls == 3)

        let unfolded = try Interpreter(model: model(b), options: .init(foldConstants: false), registry: InterpreterTests.registry())
        #expect(unfolded.foldedSteps == 0)
    }

    @Test func shapeArithmeticIsReusedWhileShapesStayTheSame() throws {
        let counter = Counter()
        let b = GraphBuilder()
        let x = b.input("x", .float, [.symbol("n")])
        let total = b.add(OpType("SumInts", domain: "test"), [b.add(OpType("Shape"), [x])])
        b.output(total)
        let interp = try Interpreter(model: model(b), registry: InterpreterTests.registry(counter: counter))
        func run(_ n: Int) throws -> Int {
            try interp.run(["x": NDArray([Float](repeating: 0, count: n), shape: [n])])[total.name]!.ints()[0]
        }
        #expect(try run(3) == 3)
        #expect(try run(3) == 3)
        #expect(counter.calls == 1)
        #expect(try run(5) == 5)
        #expect(counter.calls == 2)
    }

    @Test func anInitializerThatIsAlsoAnInputIsNotFolded() throws {
        let b = GraphBuilder()
        let c = b.initializer("c", Tensor(floats: [1, 2], shape: [2]))
        b.graph.addInput(c)
        let y = b.add(InterpreterTests.addOne, [c])
        b.output(y)
        let interp = try Interpreter(model: model(b), registry: InterpreterTests.registry())
        #expect(interp.foldedSteps == 0)
        #expect(try interp.run([:])[y.name]!.scalars(as: Float.self) == [2, 3])
        #expect(try interp.run(["c": NDArray([Float(10), 20], shape: [2])])[y.name]!.scalars(as: Float.self) == [11, 21])
    }

    @Test(arguments: [(Int64(12), Float(1)), (13, 13), (21, 13)])
    func kernelVersionFollowsTheOpset(opset: Int64, expected: Float) throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [1])
        _ = x
        b.output(b.add(OpType("Version"), []))
        let interp = try Interpreter(model: model(b, opset: opset), options: .init(foldConstants: false), registry: InterpreterTests.registry())
        #expect(try interp.runOrdered(["x": NDArray([Float(0)], shape: [1])])[0].scalars(as: Float.self) == [expected])
    }

    @Test func subgraphsReadOuterValues() throws {
        let b = GraphBuilder()
        let x = b.input("x", .float, [2])
        let cond = b.input("cond", .bool, [])
        let outer = b.add(InterpreterTests.addOne, [x])
        let thenB = GraphBuilder(name: "then")
        thenB.output(thenB.add(InterpreterTests.addOne, [outer]))
        let elseB = GraphBuilder(name: "else")
        elseB.output(elseB.add(.identity, [x]))
        let y = b.add(OpType("If"), [cond], attributes: [("then_branch", .graph(thenB.graph)), ("else_branch", .graph(elseB.graph))])
        b.output(y)
        let interp = try Interpreter(model: model(b), registry: InterpreterTests.registry())
        let xs = NDArray([Float(1), 2], shape: [2])
        #expect(try interp.run(["x": xs, "cond": NDArray(scalar: true)])[y.name]!.scalars(as: Float.self) == [3, 4])
        #expect(try interp.run(["x": xs, "cond": NDArray(scalar: false)])[y.name]!.scalars(as: Float.self) == [1, 2])
    }
}
