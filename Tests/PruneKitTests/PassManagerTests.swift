import Foundation
import PruneIR
import Testing

@testable import PruneKit

/// The pass manager: order, statistics before and after, verification, failures, IR printing.
@Suite struct PassManagerTests {
    /// Removes every Identity node (rewiring its users), so the counts change.
    struct DropIdentities: Pass {
        static let name = "drop-identities"
        static let summary = "removes Identity nodes"
        init(options: NoOptions) {}
        func run(on model: Model, context: PassContext) throws -> PassResult {
            var removed = 0.0
            for node in model.graph.nodes where node.opType == .identity {
                guard let input = node.inputs.first ?? nil else { continue }
                node.outputs[0].replaceAllUses(with: input, includingGraphOutputs: true)
                try model.graph.remove(node)
                removed += 1
            }
            return PassResult(changed: removed > 0, statistics: ["removed": removed])
        }
    }

    /// Breaks the IR on purpose: a node reads a value no node produces.
    struct Corrupt: Pass {
        static let name = "corrupt"
        static let summary = "leaves a dangling input"
        init(options: NoOptions) {}
        func run(on model: Model, context: PassContext) throws -> PassResult {
            model.graph.nodes[0].setInput(Value(name: "nowhere"), at: 0)
            return PassResult(changed: true)
        }
    }

    struct Fails: Pass {
        struct Boom: Error {}
        static let name = "fails"
        static let summary = "throws"
        init(options: NoOptions) {}
        func run(on model: Model, context: PassContext) throws -> PassResult { throw Boom() }
    }

    static var registry: PassRegistry {
        var r = PassRegistry()
        r.register(DropIdentities.self)
        r.register(Corrupt.self)
        r.register(Fails.self)
        return r
    }

    func model() -> Model {
        let b = GraphBuilder()
        let x = b.input("x", .float, [2])
        let w = b.initializer("w", Tensor(floats: [1, 2], shape: [2]))
        b.output(b.add(.identity, [b.add(.add, [b.add(.identity, [x]), w])]))
        return b.model()
    }

    @Test func recordsWhatEachPassChanged() throws {
        let m = model()
        let pm = try PassManager(pipeline: try Pipeline.parse("drop-identities,drop-identities"), registry: Self.registry)
        pm.verifyEach = true
        var printed = ""
        pm.instrumentations = [PrintIRAfter(["drop-identities"]) { printed += $0 }]
        let records = try pm.run(on: m, context: PassContext())
        #expect(records.count == 2)
        #expect(records[0].before.nodes == 3 && records[0].after.nodes == 1)
        #expect(records[0].changed && records[0].statistics["removed"] == 2)
        #expect(!records[1].changed && records[1].after.nodes == 1)
        #expect(records[0].before.params == 2 && records[0].after.params == 2)
        #expect(printed.contains("// IR after drop-identities"))
        #expect(PassManager.summary(records[0]).contains("nodes 3 → 1"))
        #expect(m.graph.outputs[0].producer?.opType == .add)
    }

    @Test func aPassThatBreaksTheIRIsCaughtByTheVerifier() throws {
        let pm = try PassManager(pipeline: try Pipeline.parse("drop-identities,corrupt"), registry: Self.registry)
        pm.verifyEach = true
        #expect {
            try pm.run(on: model(), context: PassContext())
        } throws: { error in
            guard let f = error as? PassFailure else { return false }
            return f.pass == "corrupt" && f.completed == ["drop-identities"] && f.underlying is VerificationFailure
        }
    }

    @Test func aFailureNamesThePassAndWhatRanBefore() throws {
        let pm = try PassManager(pipeline: try Pipeline.parse("drop-identities,fails,drop-identities"), registry: Self.registry)
        #expect {
            try pm.run(on: model(), context: PassContext())
        } throws: { error in
            "\(error)".contains("pass 'fails' failed (after drop-identities)")
        }
    }
}
