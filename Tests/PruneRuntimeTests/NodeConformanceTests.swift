import Foundation
import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

/// The official ONNX node tests (generated from the pinned onnx wheel by
/// scripts/fetch-node-tests.sh), run on the interpreter with onnx's own tolerances
/// (rtol 1e-3, atol 1e-7, rtol 2^-6 for bfloat16 outputs, NaN equal to NaN, dtype and shape exact).
///
/// A test is *skipped* only when the interpreter reports, before running, that it cannot run the
/// model (an operator without a kernel, an element type it does not hold, sequence values).
/// Every other test must pass: a supported operator that gives a wrong answer fails this suite.
/// `PRUNEC_NODE_FILTER=substring[,substring]` runs a subset (then the coverage floor is not checked).
@Suite struct NodeConformanceTests {
    enum Outcome {
        case passed
        case failed(String)
        case skipped(String)
    }

    static let minimumPassed = 1000

    @Test func officialNodeTests() throws {
        guard let root = TestPaths.nodeTests else {
            Issue.record("ONNX node tests missing: run `make test` (or scripts/fetch-node-tests.sh)")
            return
        }
        let filter = ProcessInfo.processInfo.environment["PRUNEC_NODE_FILTER"]?
            .split(separator: ",").map(String.init).filter { !$0.isEmpty } ?? []
        let dirs = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
            .filter { name in filter.isEmpty || filter.contains { name.contains($0) } }
        var passed = 0
        var failures: [(String, String)] = []
        var skips: [String: [String]] = [:]
        for name in dirs {
            switch NodeConformanceTests.run(root.appendingPathComponent(name)) {
            case .passed: passed += 1
            case .failed(let why): failures.append((name, why))
            case .skipped(let why): skips[why, default: []].append(name)
            }
        }
        let skipped = skips.values.reduce(0) { $0 + $1.count }
        var report = "ONNX node tests: \(passed) passed, \(failures.count) failed, \(skipped) skipped\n"
        for (name, why) in failures { report += "  FAIL \(name): \(why)\n" }
        for (why, names) in skips.sorted(by: { $0.value.count > $1.value.count }) {
            report += "  skip \(names.count)× \(why): \(names.prefix(4).joined(separator: " "))\(names.count > 4 ? " ..." : "")\n"
        }
        print(report)
        if ProcessInfo.processInfo.environment["PRUNEC_NODE_REPORT"].map({ !$0.isEmpty }) == true {
            try? report.write(toFile: ProcessInfo.processInfo.environment["PRUNEC_NODE_REPORT"]!, atomically: true, encoding: .utf8)
        }
        for (name, why) in failures { Issue.record("\(name): \(why)") }
        if filter.isEmpty {
            #expect(passed >= NodeConformanceTests.minimumPassed, "only \(passed) node tests pass; the floor is \(NodeConformanceTests.minimumPassed)")
        }
    }

    /// Runs one node-test folder (`model.onnx` + `test_data_set_*/{input,output}_N.pb`).
    static func run(_ dir: URL) -> Outcome {
        let model: Model
        do {
            model = try ModelImporter.load(contentsOf: dir.appendingPathComponent("model.onnx"))
        } catch {
            return .skipped("model does not import: \(error)")
        }
        for v in model.graph.inputs + model.graph.outputs {
            if case .tensor? = v.type { continue }
            return .skipped("non-tensor graph input or output (sequence/optional/map)")
        }
        let interpreter: Interpreter
        do {
            interpreter = try Interpreter(model: model)
        } catch RuntimeError.unsupportedNodes(let nodes) {
            let ops = Set(nodes.map(\.op)).sorted().joined(separator: ",")
            let reasons = Set(nodes.map(\.reason))
            return .skipped(reasons.count == 1 && reasons.first == "operator not implemented" ? "no kernel: \(ops)" : "unsupported \(ops): \(reasons.sorted().joined(separator: "; "))")
        } catch {
            return .failed("interpreter build: \(error)")
        }
        let sets = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasPrefix("test_data_set_") }.sorted()
        let feedNames = model.graph.inputs.filter { $0.initializer == nil }.map(\.name)
        for set in sets {
            let setDir = dir.appendingPathComponent(set)
            var inputs: [String: NDArray] = [:]
            do {
                for (i, name) in feedNames.enumerated() {
                    let url = setDir.appendingPathComponent("input_\(i).pb")
                    guard FileManager.default.fileExists(atPath: url.path) else { continue }
                    let t = try ModelImporter.loadTensor(contentsOf: url)
                    guard NDArray.supports(t.dtype) else { return .skipped("element type \(t.dtype)") }
                    inputs[name] = try NDArray(tensor: t)
                }
            } catch {
                return .skipped("input data: \(error)")
            }
            let outputs: [NDArray]
            do {
                outputs = try interpreter.runOrdered(inputs)
            } catch {
                return .failed("\(set): \(error)")
            }
            for (i, got) in outputs.enumerated() {
                let url = setDir.appendingPathComponent("output_\(i).pb")
                guard let t = try? ModelImporter.loadTensor(contentsOf: url) else { continue }
                guard NDArray.supports(t.dtype), let want = try? NDArray(tensor: t) else {
                    return .skipped("element type \(t.dtype)")
                }
                if let why = compare(got, want, rtol: 1e-3, atol: 1e-7) {
                    return .failed("\(set) output \(i) (\(model.graph.outputs[i].name)): \(why)")
                }
            }
        }
        return .passed
    }

    /// `nil` when `got` matches `want` as `np.testing.assert_allclose` would judge it.
    static func compare(_ got: NDArray, _ want: NDArray, rtol: Double, atol: Double) -> String? {
        if got.dtype != want.dtype { return "dtype \(got.dtype), expected \(want.dtype)" }
        if got.shape != want.shape { return "shape \(got.shape), expected \(want.shape)" }
        // onnx's runner allows two bfloat16 ulps (rtol 2^-6) for bfloat16 outputs.
        let rtol = got.dtype == .bfloat16 ? max(rtol, 1.0 / 64) : rtol
        var bad = 0
        var first = ""
        for i in 0..<got.count {
            let a = got.element(at: i), b = want.element(at: i)
            if a.isNaN && b.isNaN { continue }
            if a == b { continue }
            if a.isInfinite || b.isInfinite || !(abs(a - b) <= atol + rtol * abs(b)) {
                if bad == 0 { first = "element \(i): \(a) vs expected \(b)" }
                bad += 1
            }
        }
        return bad == 0 ? nil : "\(bad) of \(got.count) elements differ; first \(first)"
    }
}
