import Foundation
import PruneIR

/// Counts that show what a pass did to a model.
public struct ModelStats: Sendable, Equatable, Encodable {
    /// Nodes, subgraphs included.
    public var nodes: Int
    /// Parameters (initializer elements; see ``CostModel/parameterCount(_:)``).
    public var params: Int
    /// Multiply-accumulates where the shapes are known, else `nil`.
    public var macs: Int?

    /// The counts of `model` now.
    public init(_ model: Model) {
        nodes = model.graph.allNodes.count
        params = CostModel.parameterCount(model)
        macs = CostModel().totalMACs(model)
    }
}

/// What one pass did: for the log and the `--report` JSON.
public struct PassRecord: Sendable, Encodable {
    /// The pass as written in the pipeline (canonical text).
    public var pass: String
    /// Wall-clock seconds.
    public var seconds: Double
    /// Whether the model changed.
    public var changed: Bool
    /// The pass's own statistics.
    public var statistics: [String: Double]
    /// Counts before the pass.
    public var before: ModelStats
    /// Counts after the pass.
    public var after: ModelStats
}

/// Hooks around every pass (timing, IR printing, verification are built on them).
public protocol PassInstrumentation: AnyObject {
    /// Called before `pass` runs.
    func before(_ pass: String, model: Model)
    /// Called after `pass` ran and was verified.
    func after(_ pass: String, model: Model, record: PassRecord)
    /// Called when `pass` (or the verifier after it) failed.
    func failed(_ pass: String, model: Model, error: Error)
}

extension PassInstrumentation {
    /// Does nothing.
    public func before(_ pass: String, model: Model) {}
    /// Does nothing.
    public func after(_ pass: String, model: Model, record: PassRecord) {}
    /// Does nothing.
    public func failed(_ pass: String, model: Model, error: Error) {}
}

/// A pass that failed, with the passes that ran before it (the model is as they left it).
public struct PassFailure: Error, CustomStringConvertible {
    /// The failing pass as written in the pipeline.
    public var pass: String
    /// Passes that completed before it.
    public var completed: [String]
    /// The pass's error, or the verifier's findings.
    public var underlying: Error

    public var description: String {
        "pass '\(pass)' failed" + (completed.isEmpty ? "" : " (after \(completed.joined(separator: ",")))") + ": \(underlying)"
    }
}

/// The verifier's findings after a pass left the IR inconsistent.
public struct VerificationFailure: Error, CustomStringConvertible {
    /// What the verifier found.
    public var findings: String
    public var description: String { "the IR is invalid after the pass: \(findings)" }
}

/// Runs a pipeline's passes in order: times them, verifies the IR after each (`verifyEach`),
/// records nodes, params and MACs before and after, and calls the instrumentations.
public final class PassManager {
    /// The passes with the pipeline text of each.
    public let passes: [(text: String, pass: any Pass)]
    /// Verify the IR after every pass (on by default in debug builds).
    public var verifyEach: Bool
    /// Hooks, called in order.
    public var instrumentations: [PassInstrumentation] = []

    /// A manager for the passes of `pipeline`, made by `registry`.
    ///
    /// - Throws: ``PipelineError`` for unknown passes and bad options.
    public init(pipeline: Pipeline, registry: PassRegistry, text: String? = nil) throws {
        let made = try registry.instantiate(pipeline, text: text)
        passes = zip(pipeline.elements.map(\.description), made).map { ($0, $1) }
        #if DEBUG
            verifyEach = true
        #else
            verifyEach = false
        #endif
    }

    /// Runs every pass on `model`, in order.
    ///
    /// - Throws: ``PassFailure`` naming the failing pass and those that ran before it.
    @discardableResult
    public func run(on model: Model, context: PassContext) throws -> [PassRecord] {
        var records: [PassRecord] = []
        for (text, pass) in passes {
            for i in instrumentations { i.before(text, model: model) }
            let before = ModelStats(model)
            let start = Date()
            do {
                let result = try pass.run(on: model, context: context)
                // What the pass touched of the model file need not stay resident for the next.
                MappedWeights.releaseResidentPages()
                if verifyEach {
                    do {
                        try Verifier().verify(model)
                    } catch {
                        throw VerificationFailure(findings: "\(error)")
                    }
                }
                let record = PassRecord(pass: text, seconds: Date().timeIntervalSince(start), changed: result.changed,
                                        statistics: result.statistics, before: before, after: ModelStats(model))
                context.logger.info("\(Self.summary(record))")
                for i in instrumentations { i.after(text, model: model, record: record) }
                records.append(record)
            } catch {
                for i in instrumentations { i.failed(text, model: model, error: error) }
                throw PassFailure(pass: text, completed: records.map(\.pass), underlying: error)
            }
        }
        return records
    }

    /// One log line: `magnitude{sparsity=0.3}: 0.12 s, nodes 45 → 45, params 102138 → 71500, MACs ...`.
    public static func summary(_ r: PassRecord) -> String {
        func change(_ a: Int?, _ b: Int?) -> String {
            guard let a, let b else { return "?" }
            return a == b ? "\(a)" : "\(a) → \(b)"
        }
        return "\(r.pass): \(String(format: "%.3f", r.seconds)) s, nodes \(change(r.before.nodes, r.after.nodes)), "
            + "params \(change(r.before.params, r.after.params)), MACs \(change(r.before.macs, r.after.macs))"
            + (r.changed ? "" : " (unchanged)")
    }
}

/// Prints the IR after the passes named (the `--print-ir-after NAME` flag).
public final class PrintIRAfter: PassInstrumentation {
    let names: Set<String>
    let write: (String) -> Void

    /// Prints after every pass whose name (the text before `{`) is in `names`.
    public init(_ names: Set<String>, write: @escaping (String) -> Void) {
        self.names = names
        self.write = write
    }

    public func after(_ pass: String, model: Model, record: PassRecord) {
        let name = String(pass.prefix { $0 != "{" })
        guard names.contains(name) || names.contains(pass) else { return }
        write("// IR after \(pass)\n\(GraphPrinter.print(model.graph))\n")
    }
}
