import PruneIR
import Testing

@testable import PruneKit

/// Pipeline text: parsing, canonical printing, and errors that point at the right column.
@Suite struct PipelineTests {
    @Test(arguments: [
        "fold-masks",
        "magnitude{sparsity=0.3},fold-masks,dce",
        "ecodiff{sparsity=30%,steps=20},fold-masks",
        "a{},b",
    ])
    func canonicalTextRoundTrips(text: String) throws {
        let p = try Pipeline.parse(text)
        #expect(p.description == text.replacingOccurrences(of: "{}", with: ""))
        #expect(try Pipeline.parse(p.description) == p)
    }

    @Test func whitespaceIsIgnoredAndPrintedAway() throws {
        let p = try Pipeline.parse("  magnitude { sparsity = 0.3 , scope=global } ,  dce ")
        #expect(p.description == "magnitude{sparsity=0.3,scope=global},dce")
        #expect(p.elements.map(\.name) == ["magnitude", "dce"])
        #expect(p.elements[0].options.map(\.key) == ["sparsity", "scope"])
    }

    @Test(arguments: [
        ("", 1, "the pipeline is empty"),
        ("magnitude{sparsity=0.3", 10, "unclosed '{'"),
        ("magnitude{sparsity}", 19, "expected '=' after option 'sparsity'"),
        ("magnitude{sparsity=}", 20, "has no value"),
        ("a,,b", 3, "expected a pass name"),
        ("a b", 3, "expected ',' between passes"),
        ("m{x=1,x=2}", 7, "given twice"),
    ])
    func syntaxErrorsPointAtTheColumn(text: String, column: Int, message: String) {
        #expect {
            _ = try Pipeline.parse(text)
        } throws: { error in
            guard let e = error as? PipelineError else { return false }
            return e.column == column && e.message.contains(message) && e.description.contains("^")
        }
    }
}

/// Declared options: parsing of each kind, defaults, and errors from the registry.
@Suite struct PassOptionsTests {
    struct Gate: Pass {
        struct Options: PassOptions {
            enum Scope: String, PassOptionEnum { case layer, global }
            @PassOption("keep", .fraction, help: "fraction of each group to keep") var keep = 0.5
            @PassOption("steps", .atLeast(0), help: "optimizer steps") var steps = 10
            @PassOption("where", help: "where ranks compare") var scope: Scope = .layer
            @PassOption("verbose", help: "log more") var verbose = false
            var target = PruningTarget()
            init() {}
        }
        static let name = "gate"
        static let summary = "a test pass"
        let options: Options
        init(options: Options) { self.options = options }
        func run(on model: Model, context: PassContext) throws -> PassResult { .unchanged }
    }

    struct Needy: Pass {
        struct Options: PassOptions {
            @PassOption("target", help: "what to keep") var target: Double
            init() {}
        }
        static let name = "needy"
        static let summary = "a pass with a required option"
        let options: Options
        init(options: Options) { self.options = options }
        func run(on model: Model, context: PassContext) throws -> PassResult { .unchanged }
    }

    static var registry: PassRegistry {
        var r = PassRegistry()
        r.register(Gate.self)
        r.register(Needy.self)
        return r
    }

    func gate(_ text: String) throws -> Gate.Options {
        let passes = try PassOptionsTests.registry.instantiate(try Pipeline.parse(text), text: text)
        return try #require(passes.first as? Gate).options
    }

    @Test func defaultsAndValues() throws {
        let d = try gate("gate")
        #expect(d.keep == 0.5 && d.steps == 10 && d.scope == .layer && !d.verbose && d.target.amount == 0.3)
        let o = try gate("gate{keep=30%,steps=3,where=global,verbose=true,params=0.2,kinds=heads}")
        #expect(o.keep == 0.3 && o.steps == 3 && o.scope == .global && o.verbose)
        #expect(o.target.measure == .params && o.target.amount == 0.2 && o.target.kinds == [.heads] && o.target.global)
        #expect(try gate("gate{keep=0.25}").keep == 0.25)
        #expect(try PassOptionsTests.registry.instantiate(try Pipeline.parse("needy{target=0.5}")).first.map { ($0 as? Needy)?.options.target } == 0.5)
    }

    @Test func declarationsListEveryOptionInOrder() {
        let keys = Gate.Options.declarations.map(\.key)
        #expect(keys == ["keep", "steps", "where", "verbose"] + PruningTarget.declarations.map(\.key))
        let steps = Gate.Options.declarations[1]
        #expect(steps.summary == "steps=<an integer> (default 10; at least 0): optimizer steps")
        #expect(Needy.Options.declarations[0].defaultText == nil)
    }

    @Test func canonicalTextPrintsOnlyWhatDiffersFromTheDefaults() throws {
        let passes = try PassOptionsTests.registry.instantiate(try Pipeline.parse("gate{steps=3,keep=50%,kinds=neurons+heads}"))
        #expect(passes[0].pipelineText == "gate{steps=3,kinds=heads+neurons}")
        #expect(Gate(options: .init()).pipelineText == "gate")
    }

    @Test(arguments: [
        ("gate{keep=1.5}", 11, "between 0 and 1"),
        ("gate{keep=abc}", 11, "expects a fraction"),
        ("gate{steps=2.5}", 12, "expects an integer"),
        ("gate{steps=-1}", 12, "must be at least 0, got '-1'"),
        ("gate{where=local}", 12, "one of layer, global"),
        ("gate{params=0.2,flops=0.1}", 23, "cannot be combined with params"),
        ("gate{params=1}", 13, "would remove everything"),
        ("gate{lambda=nan}", 6, "has no option 'lambda'"),
        ("gate{sparsty=0.3}", 6, "has no option 'sparsty' (options: keep, steps, where, verbose, sparsity, params"),
        ("gate,magnitud", 6, "unknown pass 'magnitud' (passes: gate, needy)"),
        ("needy", 1, "needs option 'target'"),
        ("needy{target=inf}", 14, "expects a number"),
    ])
    func badPipelinesNameTheProblem(text: String, column: Int, message: String) {
        #expect {
            _ = try PassOptionsTests.registry.instantiate(try Pipeline.parse(text), text: text)
        } throws: { error in
            guard let e = error as? PipelineError else { return false }
            return e.column == column && e.message.contains(message)
        }
    }
}

/// A key declared by a pass and by one of its option groups is refused when the options are made.
@Test func aKeyDeclaredTwiceIsRefused() {
    struct Twice: PassOptions {
        @PassOption("sparsity", help: "shadows the target's") var sparsity = 0.5
        var target = PruningTarget()
        init() {}
    }
    #expect(throws: OptionError.self) { _ = try Twice.parse([]) }
}

/// A training loop that produces NaN or infinity stops with a message naming the pass, the step
/// and what to lower.
@Test func divergenceIsNamed() {
    #expect(throws: Never.self) { try PruningError.checkFinite([1, 2], pass: "ecodiff", step: 3, what: "the loss", hint: "lower lr") }
    do {
        try PruningError.checkFinite([1, .infinity], pass: "ecodiff", step: 3, what: "the loss", hint: "lower lr (now 100.0)")
        Issue.record("an infinite loss was accepted")
    } catch {
        #expect("\(error)" == "ecodiff diverged at step 3: the loss is inf; lower lr (now 100.0)")
    }
}
