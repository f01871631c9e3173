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
            static let declarations: [OptionSpec] = [
                OptionSpec("sparsity", .fraction, default: .double(0.5), help: "fraction of each group to remove"),
                OptionSpec("steps", .int, default: .int(10), help: "optimizer steps"),
                OptionSpec("scope", .choice(["layer", "global"]), default: .string("layer"), help: "where ranks compare"),
                OptionSpec("verbose", .bool, default: .bool(false), help: "log more"),
            ]
            var sparsity: Double
            var steps: Int
            var scope: String
            var verbose: Bool
            init(_ v: OptionValues) throws {
                sparsity = v.double("sparsity")
                steps = v.int("steps")
                scope = v.string("scope")
                verbose = v.bool("verbose")
            }
        }
        static let name = "gate"
        static let summary = "a test pass"
        let options: Options
        init(options: Options) { self.options = options }
        func run(on model: Model, context: PassContext) throws -> PassResult { .unchanged }
    }

    struct Needy: Pass {
        struct Options: PassOptions {
            static let declarations = [OptionSpec("target", .fraction, default: nil, help: "what to keep")]
            init(_ v: OptionValues) {}
        }
        static let name = "needy"
        static let summary = "a pass with a required option"
        init(options: Options) {}
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
        #expect(d.sparsity == 0.5 && d.steps == 10 && d.scope == "layer" && !d.verbose)
        let o = try gate("gate{sparsity=30%,steps=3,scope=global,verbose=true}")
        #expect(o.sparsity == 0.3 && o.steps == 3 && o.scope == "global" && o.verbose)
        #expect(try gate("gate{sparsity=0.25}").sparsity == 0.25)
    }

    @Test(arguments: [
        ("gate{sparsity=1.5}", 15, "between 0 and 1"),
        ("gate{sparsity=abc}", 15, "expects a fraction"),
        ("gate{steps=2.5}", 12, "expects an integer"),
        ("gate{scope=local}", 12, "one of layer, global"),
        ("gate{sparsty=0.3}", 6, "has no option 'sparsty' (options: sparsity, steps, scope, verbose)"),
        ("gate,magnitud", 6, "unknown pass 'magnitud' (passes: gate, needy)"),
        ("needy", 1, "needs option 'target'"),
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
