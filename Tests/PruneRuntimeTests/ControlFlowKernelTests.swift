import Foundation
import PruneIR
import PruneRuntime
import Testing

/// If, Loop and Scan on small graphs built in code. A float `Add` (same shapes or a scalar) is
/// registered here only, so these tests do not depend on the elementwise kernels.
@Suite struct ControlFlowKernelTests {
    static func registry() -> KernelRegistry {
        var r = KernelRegistry.standard
        r.register("Add", since: 1) { _ in
            ClosureKernel { inputs, ctx in
                let a = try inputs.required(0), b = try inputs.required(1)
                let shape = a.count >= b.count ? a.shape : b.shape
                let out = ctx.allocate(.float, shape)
                let pa = a.pointer(as: Float.self), pb = b.pointer(as: Float.self), po = out.pointer(as: Float.self)
                for i in 0..<out.count { po[i] = pa[a.count == 1 ? 0 : i] + pb[b.count == 1 ? 0 : i] }
                return [out]
            }
        }
        return r
    }

    func run(_ model: Model, _ inputs: [String: NDArray]) throws -> [NDArray] {
        try Interpreter(model: model, registry: ControlFlowKernelTests.registry()).runOrdered(inputs)
    }

    @Test func ifPicksBranchAndReturnsOuterValues() throws {
        let b = GraphBuilder(name: "main")
        let cond = b.input("cond", .bool, [])
        let x = b.input("x", .float, [2])
        let y = b.input("y", .float, [2])
        // Branches that return enclosing values directly (no node inside reads them).
        let thenB = GraphBuilder(name: "then")
        thenB.output(x)
        let elseB = GraphBuilder(name: "else")
        elseB.output(elseB.add(.add, [x, y]))
        let out = b.add(OpType("If"), [cond], attributes: [("then_branch", .graph(thenB.graph)), ("else_branch", .graph(elseB.graph))])
        b.output(out)
        let model = b.model(opset: 13)
        let xs = NDArray([Float(1), 2], shape: [2]), ys = NDArray([Float(10), 20], shape: [2])
        let t = try run(model, ["cond": NDArray(scalar: true), "x": xs, "y": ys])
        #expect(t[0].scalars(as: Float.self) == [1, 2])
        let f = try run(model, ["cond": NDArray(scalar: false), "x": xs, "y": ys])
        #expect(f[0].scalars(as: Float.self) == [11, 22])
    }

    @Test func loopCarriesStateAndStacksScans() throws {
        let b = GraphBuilder(name: "main")
        let m = b.input("M", .int64, [])
        let x = b.input("x", .float, [2])
        let acc0 = b.input("acc", .float, [2])
        let body = GraphBuilder(name: "body")
        _ = body.input("i", .int64, [])
        let c = body.input("c", .bool, [])
        let acc = body.input("acc_in", .float, [2])
        let next = body.add(.add, [acc, x])  // x is captured from the main graph
        let scanOut = body.add(.identity, [next])
        scanOut.type = .tensor(.float, Shape([2]))  // declared, so a zero-trip loop knows the element shape
        body.output(c, next, scanOut)
        let outs = b.node(.loop, [m, nil, acc0], attributes: [("body", .graph(body.graph))], outputs: 2)
        b.output(outs[0], outs[1])
        let model = b.model(opset: 13)
        let r = try run(model, ["M": NDArray(scalar: Int64(3)), "x": NDArray([Float(1), 2], shape: [2]),
                                "acc": NDArray([Float(0), 0], shape: [2])])
        #expect(r[0].scalars(as: Float.self) == [3, 6])
        #expect(r[1].shape == [3, 2])
        #expect(r[1].scalars(as: Float.self) == [1, 2, 2, 4, 3, 6])
        // Zero trips: carried values pass through, scan outputs are empty.
        let z = try run(model, ["M": NDArray(scalar: Int64(0)), "x": NDArray([Float(1), 2], shape: [2]),
                                "acc": NDArray([Float(5), 5], shape: [2])])
        #expect(z[0].scalars(as: Float.self) == [5, 5])
        #expect(z[1].shape == [0, 2])
    }

    @Test func scanAlongAxisOneReversed() throws {
        let b = GraphBuilder(name: "main")
        let s0 = b.input("s0", .float, [2])
        let xs = b.input("xs", .float, [2, 3])
        let body = GraphBuilder(name: "body")
        let s = body.input("s", .float, [2])
        let e = body.input("e", .float, [2])
        let sum = body.add(.add, [s, e])
        body.output(sum, body.add(.identity, [sum]))
        let outs = b.node(.scan, [s0, xs], attributes: [
            ("body", .graph(body.graph)), ("num_scan_inputs", .int(1)),
            ("scan_input_axes", .ints([1])), ("scan_input_directions", .ints([1])),
            ("scan_output_axes", .ints([-1])), ("scan_output_directions", .ints([0])),
        ], outputs: 2)
        b.output(outs[0], outs[1])
        let r = try run(b.model(opset: 16), ["s0": NDArray([Float(0), 0], shape: [2]),
                                             "xs": NDArray([Float(1), 2, 3, 4, 5, 6], shape: [2, 3])])
        #expect(r[0].scalars(as: Float.self) == [6, 15])
        // Reads columns 2, 1, 0; stacks along the last axis.
        #expect(r[1].shape == [2, 3])
        #expect(r[1].scalars(as: Float.self) == [3, 5, 6, 6, 11, 15])
    }
}
