import Foundation
import ONNXProto
import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

/// Every registered pass and every subcommand on inputs that are wrong in every way a user makes
/// them: broken or odd models, calibration data of another model or of the wrong shape or type,
/// options at and past their limits, `--shape` bindings that cannot be made. Each run must end
/// with 0 (the input was fine after all), 1 (a check failed), 64 (usage) or 65 (data) and a
/// message on stderr, never a trap, and must leave no output file behind when it fails.
///
/// Runs go two at a time (independent processes); the whole campaign takes about two minutes on
/// two cores with a debug build.
@Suite("hostile inputs to every pass and subcommand")
struct HostileCampaignTests {
    /// One prunec run of the campaign; `OUT` in an argument is replaced by a fresh output path.
    struct Case: Sendable {
        var label: String
        var args: [String]
    }

    static let passes: [String: String] = [
        "magnitude": "magnitude,fold-masks", "fluctuation": "fluctuation{samples=2}",
        "ld-pruner": "ld-pruner{samples=2,timesteps=1,holdout=1}", "reconstruct": "magnitude,reconstruct{samples=2}",
        "autobot": "autobot{steps=1,holdout=1,batch=1}", "depth": "depth{holdout=1}", "distill": "distill{steps=1,eval-every=1}",
        "ecodiff": "ecodiff{steps=1,denoise-steps=1,samples=1,holdout=1}", "ecodiff-output": "ecodiff{steps=1,objective=output,holdout=1}",
        "cleanup": "cleanup", "dce": "dce", "fold-constants": "fold-constants", "fold-masks": "fold-masks",
    ]

    static func model(_ name: String) -> String { "examples/models/\(name).onnx" }
    static func calib(_ name: String) -> String { "examples/models/\(name).calib.npz" }

    /// Runs `cases` two at a time and returns one line per run that broke the contract.
    static func judgeAll(_ cases: [Case], in dir: URL) -> (failures: [String], statuses: [Int32: Int]) {
        let tally = Tally()
        let next = ManagedCounter()
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            while let i = next.take(below: cases.count) {
                let c = cases[i]
                let out = dir.appendingPathComponent("out-\(i)")
                let args = c.args.map { $0.replacingOccurrences(of: "OUT", with: out.path) }
                let verdict: (Int32, String?)
                do {
                    let r = try TestProcess.run(CLI.binary, args, timeout: 120)
                    let status: Int32 = r.timedOut ? -1 : r.signaled ? 128 + r.status : r.status
                    let left = (try? FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("out-\(i).") }) ?? []
                    var problem: String?
                    if r.timedOut {
                        problem = "still running after 120 s"
                    } else if ![0, 1, 64, 65].contains(status) {
                        problem = "exit \(status): \(r.stderr.suffix(600))"
                    } else if ["Fatal error", "Precondition failed", "Assertion failed"].contains(where: r.stderr.contains) {
                        problem = "a runtime trap message: \(r.stderr.suffix(600))"
                    } else if status != 0 && r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                        problem = "exit \(status) without a message"
                    } else if status != 0 && !left.isEmpty {
                        problem = "exit \(status) but left \(left)"
                    }
                    for f in left { try? FileManager.default.removeItem(at: dir.appendingPathComponent(f)) }
                    verdict = (status, problem)
                } catch {
                    verdict = (-2, "could not run: \(error)")
                }
                tally.add(verdict.0, verdict.1.map { "\(c.label): prunec \(c.args.joined(separator: " ")): \($0)" })
            }
        }
        return tally.result
    }

    /// Writes `model` as `name.onnx` in `dir`.
    static func write(_ model: Onnx_ModelProto, _ name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent("\(name).onnx")
        try model.serializedData().write(to: url)
        return url.path
    }

    static func constant(_ name: String, _ values: [Int64]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = 7
        t.dims = [Int64(values.count)]
        t.int64Data = values
        return t
    }

    static func graph(_ nodes: [Onnx_NodeProto], inputs: [Onnx_ValueInfoProto], outputs: [Onnx_ValueInfoProto],
                      initializers: [Onnx_TensorProto] = [], opset: Int64 = 17) -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = "g"
        g.node = nodes
        g.input = inputs
        g.output = outputs
        g.initializer = initializers
        return Onnx_ModelProto(irVersion: 8, opset: opset, graph: g)
    }

    /// Broken and odd models: bytes that are no model, a model the interpreter cannot run, models
    /// with nothing to feed or nothing to compare, and models whose constants ask for arrays no
    /// machine can hold (each trapped in the allocator before).
    static func hostileModels(in dir: URL) throws -> [(name: String, path: String)] {
        var out: [(String, String)] = []
        func raw(_ name: String, _ data: Data) throws {
            let url = dir.appendingPathComponent("\(name).onnx")
            try data.write(to: url)
            out.append((name, url.path))
        }
        let bert = try Data(contentsOf: CLI.repoRoot.appendingPathComponent(model("bert")))
        try raw("truncated", bert.prefix(bert.count / 2))
        var rng = SystemRandomNumberGenerator()
        try raw("random-bytes", Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        try raw("empty", Data())
        let x = Onnx_ValueInfoProto.tensor("x", dims: [2, 3]), y = Onnx_ValueInfoProto.tensor("y")
        var fancy = Onnx_NodeProto("FancyOp", ["x"], ["y"], name: "fancy")
        fancy.domain = "com.acme"
        var unsupported = graph([fancy], inputs: [x], outputs: [y])
        var acme = Onnx_OperatorSetIdProto()
        acme.domain = "com.acme"
        acme.version = 1
        unsupported.opsetImport.append(acme)
        out.append(("unsupported-op", try write(unsupported, "unsupported-op", in: dir)))
        var w = Onnx_TensorProto()
        w.name = "w"
        w.dataType = 1
        w.dims = [1, 3]
        w.floatData = [1, 2, 3]
        out.append(("no-inputs", try write(graph([Onnx_NodeProto("Relu", ["w"], ["y"])], inputs: [], outputs: [y], initializers: [w]),
                                           "no-inputs", in: dir)))
        var argmax = Onnx_NodeProto("ArgMax", ["x"], ["y"], name: "argmax")
        argmax.attribute = [Onnx_AttributeProto.with { $0.name = "axis"; $0.type = .int; $0.i = 1 }]
        out.append(("no-float-outputs", try write(graph([argmax], inputs: [x], outputs: [.tensor("y", elemType: 7)]), "no-float-outputs", in: dir)))
        out.append(("no-outputs", try write(graph([Onnx_NodeProto("Relu", ["x"], ["h"])], inputs: [x], outputs: []), "no-outputs", in: dir)))
        let bombs: [(String, [Onnx_NodeProto], [Onnx_TensorProto])] = [
            ("constant-of-shape-huge", [Onnx_NodeProto("ConstantOfShape", ["s"], ["c"]), Onnx_NodeProto("Add", ["x", "c"], ["y"])],
             [constant("s", [1_000_000, 1_000_000, 1_000_000])]),
            ("range-huge", [Onnx_NodeProto("Range", ["a", "b", "d"], ["r"]), Onnx_NodeProto("Cast", ["r"], ["y"]).with(int: "to", 1)],
             [constant("a", [0]), constant("b", [1 << 60]), constant("d", [1])].map { var t = $0; t.dims = []; return t }),
            ("range-overflow", [Onnx_NodeProto("Range", ["a", "b", "d"], ["r"]), Onnx_NodeProto("Cast", ["r"], ["y"]).with(int: "to", 1)],
             [constant("a", [Int64.min + 1]), constant("b", [Int64.max]), constant("d", [1])].map { var t = $0; t.dims = []; return t }),
            ("tile-huge", [Onnx_NodeProto("Tile", ["x", "r"], ["y"])], [constant("r", [1 << 40, 1 << 40])]),
            ("pad-huge", [Onnx_NodeProto("Pad", ["x", "p"], ["y"])], [constant("p", [0, 1 << 40, 0, 1 << 40])]),
            ("resize-negative-sizes", [Onnx_NodeProto("Resize", ["x", "", "", "s"], ["y"])], [constant("s", [2, -4])]),
            ("onehot-huge", [Onnx_NodeProto("OneHot", ["i", "d", "v"], ["o"]), Onnx_NodeProto("ReduceSum", ["o"], ["r"]), Onnx_NodeProto("Add", ["x", "r"], ["y"])],
             [constant("i", [1]), { var t = constant("d", [1 << 50]); t.dims = []; return t }(),
              { var t = Onnx_TensorProto(); t.name = "v"; t.dataType = 1; t.dims = [2]; t.floatData = [0, 1]; return t }()]),
        ]
        for (name, nodes, inits) in bombs {
            out.append((name, try write(graph(nodes, inputs: [x], outputs: [y], initializers: inits), name, in: dir)))
        }
        return out
    }

    @Test func hostileModelsThroughEveryPassAndSubcommand() throws {
        let dir = try CLI.temporaryDirectory("hostile-models")
        defer { try? FileManager.default.removeItem(at: dir) }
        var cases: [Case] = []
        for (name, path) in try Self.hostileModels(in: dir) {
            for (pass, pipeline) in Self.passes.sorted(by: { $0.key < $1.key }) {
                cases.append(Case(label: "\(name) \(pass)", args: [path, "--pass", pipeline, "-o", "OUT.onnx", "--runs", "1", "--sampling-runs", "0"]))
            }
            cases += [
                Case(label: "\(name) round trip", args: [path, "-o", "OUT.onnx"]),
                Case(label: "\(name) inspect", args: ["inspect", path, "--groups"]),
                Case(label: "\(name) run", args: ["run", path, "--inputs", Self.calib("resnet"), "-o", "OUT.npz"]),
                Case(label: "\(name) bench", args: ["bench", path, "--runs", "1", "--warmup", "0"]),
                Case(label: "\(name) check", args: ["check", path, "--baseline", Self.model("resnet"), "--output", "OUT.txt"]),
                Case(label: "\(name) check as baseline", args: ["check", Self.model("resnet"), "--baseline", path, "--output", "OUT.txt"]),
                Case(label: "\(name) diff", args: ["diff", path, Self.model("resnet")]),
            ]
        }
        let (failures, statuses) = Self.judgeAll(cases, in: dir)
        print("hostile models: \(cases.count) runs, exit codes \(statuses.sorted { $0.key < $1.key })")
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count) runs:\n\(failures.joined(separator: "\n"))")
    }

    /// Calibration data of the wrong kind, for every pass on the DiT (both exporters) and the
    /// cheap passes on the others.
    static func wrongCalibrations(for name: String, in dir: URL) throws -> [(name: String, path: String)] {
        let all = try NPZ.read(contentsOf: CLI.repoRoot.appendingPathComponent(calib(name)))
        var out: [(String, String)] = []
        func npz(_ label: String, _ members: [(name: String, array: NDArray)]) throws {
            let url = dir.appendingPathComponent("\(name).\(label).npz")
            try NPZ.write(members, to: url)
            out.append((label, url.path))
        }
        func mapped(_ f: (String, NDArray) -> NDArray) -> [(name: String, array: NDArray)] { all.map { ($0.name, f($0.name, $0.array)) } }
        func ones(_ dtype: DType, _ shape: [Int]) -> NDArray {
            let n = shape.reduce(1, *)
            return dtype == .float ? NDArray([Float](repeating: 1, count: n), shape: shape) : NDArray([Int64](repeating: 1, count: n), shape: shape)
        }
        let other = name == "unet" ? "dit" : "unet"
        out.append(("another model's", CLI.repoRoot.appendingPathComponent(calib(other)).path))
        // Right names, half the spatial size (the DiT's [1,4,8,8] where the UNet wants [1,4,16,16]).
        try npz("half-size", mapped { _, a in a.rank >= 2 ? ones(a.dtype, a.shape.dropLast().map { $0 } + [max(1, a.shape.last! / 2)]) : a })
        try npz("int-for-float", mapped { _, a in a.dtype == .float ? ones(.int64, a.shape) : a })
        try npz("float-for-int", mapped { _, a in a.dtype == .int64 ? ones(.float, a.shape) : a })
        try npz("empty-arrays", mapped { _, a in a.rank > 0 ? NDArray(zeros: a.dtype, shape: [0] + a.shape.dropFirst()) : a })
        try npz("rank-up", mapped { _, a in a.reshaped([1] + a.shape) })
        try npz("scalars", mapped { _, a in ones(a.dtype, []) })
        try npz("mismatched-sets", mapped { key, a in key.hasPrefix("set2.") ? ones(a.dtype, a.shape.map { $0 == 1 ? 1 : $0 + 1 }) : a })
        try npz("nan", mapped { _, a in a.dtype == .float ? NDArray([Float](repeating: .nan, count: a.count), shape: a.shape) : a })
        let bytes = try Data(contentsOf: CLI.repoRoot.appendingPathComponent(calib(name)))
        let truncated = dir.appendingPathComponent("\(name).truncated.npz")
        try bytes.prefix(bytes.count / 3).write(to: truncated)
        out.append(("truncated", truncated.path))
        return out
    }

    @Test func wrongCalibrationThroughEveryPass() throws {
        let dir = try CLI.temporaryDirectory("hostile-calib")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cheap = ["magnitude", "fluctuation", "ecodiff"]
        let plan: [(model: String, passes: [String])] = [
            ("dit", Self.passes.keys.sorted()), ("dit.dynamo", cheap + ["ld-pruner", "distill"]), ("unet", cheap),
            ("llama", cheap + ["depth", "distill"]), ("bert", cheap + ["reconstruct"]), ("resnet", cheap + ["autobot"]),
        ]
        var cases: [Case] = []
        for (model, passes) in plan {
            let data = model.replacingOccurrences(of: ".dynamo", with: "")
            for (label, file) in try Self.wrongCalibrations(for: data, in: dir) {
                // NaN data is legal (a warning) and makes the slow passes run in full: keep it to the cheap ones.
                for pass in passes where label != "nan" || cheap.contains(pass) {
                    cases.append(Case(label: "\(model) \(pass) \(label)",
                                      args: [Self.model(model), "--pass", Self.passes[pass]!, "--calib", file, "-o", "OUT.onnx", "--runs", "1", "--sampling-runs", "1"]))
                }
                cases += [
                    Case(label: "\(model) run \(label)", args: ["run", Self.model(model), "--inputs", file, "-o", "OUT.npz"]),
                    Case(label: "\(model) run set 2 \(label)", args: ["run", Self.model(model), "--inputs", file, "--set", "2", "-o", "OUT.npz"]),
                    Case(label: "\(model) bench \(label)", args: ["bench", Self.model(model), "--inputs", file, "--runs", "1", "--warmup", "0"]),
                    Case(label: "\(model) check \(label)", args: ["check", Self.model(model), "--baseline", Self.model(model), "--inputs", file,
                                                                  "--output", "OUT.txt"]),
                ]
            }
        }
        let (failures, statuses) = Self.judgeAll(cases, in: dir)
        print("wrong calibration: \(cases.count) runs, exit codes \(statuses.sorted { $0.key < $1.key })")
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count) runs:\n\(failures.joined(separator: "\n"))")
    }

    /// Every option of every pass at its declared minimum, just below it, just above its maximum,
    /// a word, an unknown enum value; unknown option names; `sample=`/`timestep=` naming the
    /// wrong input. On the DiT, where every pass runs in well under a second at these settings.
    @Test func optionsAtAndPastTheirLimits() throws {
        let dir = try CLI.temporaryDirectory("hostile-options")
        defer { try? FileManager.default.removeItem(at: dir) }
        let listing = try CLI.run(["passes", "--options"]).stdout
        let small = ["autobot": "steps=1,holdout=1", "depth": "holdout=1", "distill": "steps=1,eval-every=1",
                     "ecodiff": "steps=1,denoise-steps=1,samples=1,holdout=1", "fluctuation": "samples=2",
                     "ld-pruner": "samples=2,timesteps=1,holdout=1", "reconstruct": "samples=2"]
        func pipeline(_ pass: String, _ kv: String) -> String {
            let key = kv.prefix { $0 != "=" }
            let base = (small[pass] ?? "").split(separator: ",").filter { !$0.isEmpty && !$0.hasPrefix("\(key)=") }
            return (pass == "reconstruct" ? "magnitude," : "") + pass + "{" + (base + [Substring(kv)]).joined(separator: ",") + "}"
        }
        func compile(_ pass: String, _ kv: String, model: String = "dit") -> Case {
            Case(label: "\(pass){\(kv)}", args: [Self.model(model), "--pass", pipeline(pass, kv), "--calib", Self.calib(model), "-o", "OUT.onnx", "--runs", "1", "--sampling-runs", "0"])
        }
        // Values whose run would be long (the maximum of a step count) are not tried.
        let long: Set<String> = ["steps", "denoise-steps", "samples", "timesteps", "draws", "eval-every", "holdout", "batch", "blocks", "max-features"]
        var cases: [Case] = [], current = "", options = 0
        for line in listing.split(separator: "\n") {
            if !line.hasPrefix(" ") {
                current = String(line.split(separator: " ").first ?? "")
                cases.append(compile(current, "no-such-option=1"))
                continue
            }
            let t = line.trimmingCharacters(in: .whitespaces)
            guard let eq = t.firstIndex(of: "="), let close = t.firstIndex(of: ">") else { continue }
            let key = String(t[..<eq]), kind = String(t[t.index(after: eq)...close])
            options += 1
            var values = ["lots", "1e999", "9223372036854775808", ""]
            if let range = t.range(of: #"from (\S+) to ([^)]+)\)"#, options: .regularExpression) {
                let bounds = t[range].dropFirst(5).dropLast().components(separatedBy: " to ")
                if let lo = Double(bounds[0]), let hi = Double(bounds[1]) {
                    let integer = kind.contains("integer")
                    values.append(bounds[0])
                    if !long.contains(key) { values.append(bounds[1]) }
                    values.append(integer ? String(Int(lo) - 1) : String(lo > 0 ? lo / 10 : -1e-9))
                    values.append(integer ? String(Int(min(hi, 1e15)) + 1) : String(hi * 10))
                }
            }
            if kind.contains("fraction") { values += ["0", "1", "100%", "101%", "-0.1"] }
            if kind.contains("one of") || kind.contains("joined") || kind.contains("true or false") { values += ["bogus", "1"] }
            if kind.contains("a word") { values += ["bogus", "class_labels", "timestep", "sample", "*"] }
            for v in values { cases.append(compile(current, "\(key)=\(v)")) }
        }
        // The sample and the timestep named as each other, as the class labels, or as an input
        // of another shape (the UNet's text conditioning as its latent).
        for (s, t) in [("timestep", "sample"), ("class_labels", "timestep"), ("sample", "class_labels"), ("sample", "sample")] {
            cases.append(compile("ecodiff", "sample=\(s),timestep=\(t)"))
            cases.append(compile("ld-pruner", "samples=1,timesteps=1").with(label: "ld-pruner \(s)/\(t)"))
        }
        for (s, t) in [("encoder_hidden_states", "timestep"), ("timestep", "encoder_hidden_states"), ("sample", "encoder_hidden_states")] {
            cases.append(compile("ecodiff", "sample=\(s),timestep=\(t)", model: "unet"))
        }
        #expect(options > 50)
        let (failures, statuses) = Self.judgeAll(cases, in: dir)
        print("options at their limits: \(cases.count) runs over \(options) options, exit codes \(statuses.sorted { $0.key < $1.key })")
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count) runs:\n\(failures.joined(separator: "\n"))")
    }

    /// `--shape` bindings of the wrong rank, with zero, negative or absurd dimensions, naming no
    /// input; the subcommands' own flags past their limits.
    @Test func shapesAndSubcommandFlags() throws {
        let dir = try CLI.temporaryDirectory("hostile-flags")
        defer { try? FileManager.default.removeItem(at: dir) }
        let resnet = Self.model("resnet"), calib = Self.calib("resnet")
        var cases: [Case] = []
        let shapes = ["input=1x3x32", "input=0x3x32x32", "input=-1x3x32x32", "input=1x3x0x32", "input=1x3x99999999999x32",
                      "input=100000x100000x100000x100000", "input=9223372036854775807x2", "input=", "input=abc", "bogus=1x2", "=1x3", "input"]
        for s in shapes {
            cases += [
                Case(label: "inspect --shape \(s)", args: ["inspect", resnet, "--shape", s]),
                Case(label: "diff --shape \(s)", args: ["diff", resnet, resnet, "--shape", s]),
                Case(label: "bench --shape \(s)", args: ["bench", resnet, "--shape", s, "--runs", "1", "--warmup", "0"]),
                Case(label: "check --shape \(s)", args: ["check", resnet, "--baseline", resnet, "--shape", s, "--output", "OUT.txt"]),
                Case(label: "compile --shape \(s)", args: [resnet, "--pass", "magnitude,fold-masks", "--shape", s, "-o", "OUT.onnx", "--runs", "1"]),
            ]
        }
        for (model, s) in [("dit", "sample=1x4x16x16"), ("dit", "timestep=1x1"), ("unet", "sample=1x4x8x8"), ("unet", "encoder_hidden_states=1x0x32"),
                           ("bert", "input_ids=1x0"), ("bert", "input_ids=1x100000"), ("llama", "input_ids=2x16")] {
            cases += [
                Case(label: "\(model) bench --shape \(s)", args: ["bench", Self.model(model), "--shape", s, "--runs", "1", "--warmup", "0"]),
                Case(label: "\(model) ecodiff --shape \(s)", args: [Self.model(model), "--pass", Self.passes["ecodiff-output"]!, "--shape", s, "-o", "OUT.onnx", "--runs", "1"]),
            ]
        }
        let compileFlags: [[String]] = [
            ["--threads", "0"], ["--threads", "-1"], ["--runs", "0"], ["--runs", "-1"], ["--seed", "-1"], ["--max-drift", "nan"], ["--max-drift", "-1"],
            ["--external-data", "sometimes"], ["--data-file", "../x.data"], ["--report", "/nonexistent/dir/r.json"], ["--teacher", Self.model("bert")],
            ["--compare", "bogus"], ["--compare", "magnitude{sparsity=2}"], ["--print-ir-after", "bogus"], ["--pass", ""], ["--pass", "magnitude{"],
            ["--pass", "magnitude{sparsity=0.3,sparsity=0.4}"], ["--pass", "magnitude{kinds=+}"], ["-o", "/nonexistent/dir/out.onnx"],
        ]
        for f in compileFlags {
            cases.append(Case(label: "compile \(f.joined(separator: " "))",
                              args: [resnet, "--pass", "magnitude,fold-masks", "--calib", calib, "-o", "OUT.onnx", "--runs", "1"] + f))
        }
        for f in [["--set", "-1"], ["--set", "0"], ["--set", "99999999999999"], ["--threads", "0"], ["--threads", "-3"]] {
            cases.append(Case(label: "run \(f.joined(separator: " "))", args: ["run", resnet, "--inputs", calib, "-o", "OUT.npz"] + f))
            cases.append(Case(label: "bench \(f.joined(separator: " "))", args: ["bench", resnet, "--inputs", calib, "--runs", "1", "--warmup", "0"] + f))
        }
        for f in [["--runs", "0"], ["--runs", "-1"], ["--warmup", "-1"]] {
            cases.append(Case(label: "bench \(f.joined(separator: " "))", args: ["bench", resnet, "--inputs", calib] + f))
        }
        cases += [
            Case(label: "run -o a folder", args: ["run", resnet, "--inputs", calib, "-o", dir.path]),
            Case(label: "run -o nowhere", args: ["run", resnet, "--inputs", calib, "-o", "/nonexistent/dir/x.npz"]),
            Case(label: "run a folder of inputs", args: ["run", resnet, "--inputs", dir.path]),
        ]
        for f in [["--min-param-reduction", "200%"], ["--min-param-reduction", "-1"], ["--min-mac-reduction", "nan"], ["--max-params", "-1"],
                  ["--max-drift", "nan"], ["--format", "yaml"], ["--sweep", calib], ["--min-cosine", "2"]] {
            cases.append(Case(label: "check \(f.joined(separator: " "))", args: ["check", resnet, "--baseline", resnet, "--output", "OUT.txt"] + f))
        }
        for (a, b) in [("bert", "llama"), ("dit", "unet"), ("unet", "unet.dynamo"), ("dit", "dit.dynamo")] {
            cases.append(Case(label: "check \(a) against \(b)", args: ["check", Self.model(a), "--baseline", Self.model(b), "--output", "OUT.txt"]))
            cases.append(Case(label: "diff \(a) \(b)", args: ["diff", Self.model(a), Self.model(b)]))
        }
        for at in ["0.1,2", "-1", "nan", ""] {
            cases.append(Case(label: "sweep --at \(at)", args: ["sweep", resnet, "--pass", "magnitude{params=$x},fold-masks", "--at", at, "--calib", calib, "-o", "OUT"]))
        }
        let (failures, statuses) = Self.judgeAll(cases, in: dir)
        print("shapes and flags: \(cases.count) runs, exit codes \(statuses.sorted { $0.key < $1.key })")
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count) runs:\n\(failures.joined(separator: "\n"))")
    }
}

/// Hands out 0, 1, 2, ... to concurrent workers.
private final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

/// Exit codes and failures gathered from concurrent workers.
private final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [String] = []
    private var statuses: [Int32: Int] = [:]

    func add(_ status: Int32, _ failure: String?) {
        lock.lock()
        defer { lock.unlock() }
        statuses[status, default: 0] += 1
        if let failure { failures.append(failure) }
    }

    var result: (failures: [String], statuses: [Int32: Int]) {
        lock.lock()
        defer { lock.unlock() }
        return (failures.sorted(), statuses)
    }
}

extension HostileCampaignTests.Case {
    fileprivate func with(label: String) -> Self {
        var c = self
        c.label = label
        return c
    }
}

extension Onnx_NodeProto {
    fileprivate func with(int name: String, _ value: Int64) -> Self {
        var n = self
        n.attribute.append(Onnx_AttributeProto.with { $0.name = name; $0.type = .int; $0.i = value })
        return n
    }
}
