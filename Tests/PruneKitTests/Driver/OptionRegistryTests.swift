import BuiltinPasses
import Testing

@testable import PruneKit

/// Every option of every built-in pass, from its one declaration: defaults build, a non-default
/// value round-trips through the printed pipeline, and an out-of-range value is refused at the
/// value's column.
@Suite struct OptionRegistryTests {
    static let entries = BuiltinPasses.registry.all

    /// A value other than the default that the declaration accepts, and one it refuses (if any).
    static func values(_ o: OptionSpec) -> (accepted: String, refused: String?) {
        let d = o.defaultText ?? ""
        switch o.kind {
        case .int:
            let v = Int(d) ?? 0
            return (String(v + 1), o.range.map { _ in "-1" } ?? "x")
        case .double:
            let v = Double(d) ?? 0
            return ((v * 2 + 1).optionText, o.range.map { _ in "-1.0" } ?? "nan")
        case .fraction:
            return (d == "0.5" ? "0.25" : "0.5", "1.5")
        case .bool:
            return (d == "true" ? "false" : "true", "maybe")
        case .string:
            return ("other", nil)
        case .choice(let words):
            return (words.first { $0 != d } ?? d, "no-such-choice")
        case .words(let words):
            return (words.first { $0 != "all" && $0 != d } ?? d, "no-such-kind")
        }
    }

    @Test func everyPassBuildsWithItsDefaults() throws {
        #expect(Self.entries.count >= 12)
        for e in Self.entries {
            let pass = try #require(try BuiltinPasses.registry.instantiate(Pipeline([.init(name: e.name)])).first)
            #expect(pass.pipelineText == e.name, "\(e.name) with defaults prints as \(pass.pipelineText)")
        }
    }

    @Test func everyOptionRoundTripsThroughThePrintedPipeline() throws {
        let registry = BuiltinPasses.registry
        var checked = 0
        for e in Self.entries {
            for o in e.options {
                let (value, _) = Self.values(o)
                // `flops` and `params` of a target cannot both be set; each alone is fine.
                let text = "\(e.name){\(o.key)=\(value)}"
                let pass = try #require(try registry.instantiate(Pipeline.parse(text), text: text).first, "\(text)")
                let printed = pass.pipelineText
                #expect(printed.contains("\(o.key)="), "\(text) printed as \(printed): the non-default value was lost")
                let again = try #require(try registry.instantiate(Pipeline.parse(printed)).first)
                #expect(again.pipelineText == printed, "\(text): \(printed) → \(again.pipelineText)")
                checked += 1
            }
        }
        #expect(checked > 80)
    }

    /// Every number an option takes is bounded on both sides: a finite value that passes cannot
    /// make a pass loop for ever, allocate without limit or overflow its arithmetic.
    @Test func everyNumericOptionHasARange() {
        for e in Self.entries {
            for o in e.options where o.kind == .int || o.kind == .double {
                #expect(o.range?.hasPrefix("from ") == true, "\(e.name){\(o.key)} is \(o.kind) with range \(o.range ?? "none")")
            }
        }
    }

    @Test func outOfRangeValuesAreRefusedAtTheirColumn() throws {
        let registry = BuiltinPasses.registry
        for e in Self.entries {
            for o in e.options {
                guard let bad = Self.values(o).refused else { continue }
                let text = "dce,\(e.name){\(o.key)=\(bad)}"
                let column = text.count - bad.count
                #expect {
                    _ = try registry.instantiate(Pipeline.parse(text), text: text)
                } throws: { error in
                    guard let p = error as? PipelineError else { return false }
                    return p.column == column && p.message.contains("option '\(o.key)'")
                }
            }
        }
    }
}
