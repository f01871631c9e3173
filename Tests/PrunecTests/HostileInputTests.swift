import Foundation
import ONNXProto
import PruneIR
import PruneRuntime
import PruneTestSupport
import Testing

/// The hostile-input campaign: calibration files that are broken in every way a user or an
/// attacker can make them, and every numeric option of every pass at -1, 0, NaN, 1e30 and a word,
/// on the example encoder, decoder, UNet and CNN. Every run must end with exit 0, 1, 64 or 65
/// within its time budget (never a crash or a hang) and write nothing when it fails.
@Suite("hostile calibration files and options", .serialized)
struct HostileInputTests {
    static let models = ["bert", "llama", "unet", "resnet"]
    /// Seconds one run may take (debug build, 2 shared cores).
    static let budget = 90.0

    /// Runs prunec with a deadline; `nil` status when it had to be killed, 128 + N for a death by signal N.
    static func run(_ args: [String], budget: Double = budget) throws -> (status: Int32?, stderr: String, seconds: Double) {
        let start = Date()
        let r = try TestProcess.run(CLI.binary, args, timeout: budget)
        return (r.timedOut ? nil : r.signaled ? 128 + r.status : r.status, r.stderr, Date().timeIntervalSince(start))
    }

    /// Checks one run of the campaign and returns a line for the tally when it fails.
    static func judge(_ label: String, _ r: (status: Int32?, stderr: String, seconds: Double), output: URL) -> String? {
        let written = FileManager.default.fileExists(atPath: output.path)
        defer { try? FileManager.default.removeItem(at: output) }
        guard let status = r.status else { return "\(label): still running after \(Int(budget)) s" }
        guard [0, 1, 64, 65].contains(status) else { return "\(label): exit \(status): \(r.stderr.suffix(400))" }
        if status != 0 && written { return "\(label): exit \(status) but \(output.lastPathComponent) was written" }
        if status == 65 && !r.stderr.contains("error") { return "\(label): exit 65 without an error message" }
        return nil
    }

    /// The hostile variants of a model's calibration file, written into `dir`.
    static func hostileFiles(for model: String, in dir: URL) throws -> [(name: String, url: URL)] {
        let good = CLI.repoRoot.appendingPathComponent("examples/models/\(model).calib.npz")
        let arrays = try NPZ.read(contentsOf: good).filter { !$0.name.contains(".") }
        var out: [(String, URL)] = []
        func npz(_ name: String, _ members: [(name: String, array: NDArray)]) throws {
            let url = dir.appendingPathComponent("\(model).\(name).npz")
            try NPZ.write(members, to: url)
            out.append((name, url))
        }
        func raw(_ name: String, _ data: Data) throws {
            let url = dir.appendingPathComponent("\(model).\(name).npz")
            try data.write(to: url)
            out.append((name, url))
        }
        func mapped(_ f: (NDArray) -> NDArray) -> [(name: String, array: NDArray)] { arrays.map { ($0.name, f($0.array)) } }
        func filled(_ a: NDArray, float: Float, int: Int64) -> NDArray {
            a.dtype == .float ? NDArray([Float](repeating: float, count: a.count), shape: a.shape)
                : NDArray([Int64](repeating: int, count: a.count), shape: a.shape)
        }
        let bytes = try Data(contentsOf: good)
        try raw("truncated", bytes.prefix(bytes.count / 2))
        try raw("empty", Data())
        try raw("not-a-zip", Data("input_ids,1,2,3\n".utf8))
        try npz("wrong-dtype", mapped { a in
            a.dtype == .float ? NDArray([Double](repeating: 0.5, count: a.count), shape: a.shape) : NDArray([Int32](repeating: 1, count: a.count), shape: a.shape)
        })
        try npz("wrong-rank", mapped { a in filled(NDArray(zeros: a.dtype, shape: [1] + a.shape), float: 0.5, int: 1) })
        try npz("wrong-shape", mapped { a in filled(NDArray(zeros: a.dtype, shape: a.shape.map { $0 == 1 ? 1 : $0 + 3 }), float: 0.5, int: 1) })
        try npz("nan", mapped { filled($0, float: .nan, int: 1) })
        try npz("inf", mapped { filled($0, float: .infinity, int: 1) })
        try npz("ids-out-of-range", mapped { filled($0, float: 0.5, int: 1_000_000_000) })
        try npz("ids-negative", mapped { filled($0, float: 0.5, int: -5) })
        try npz("key-missing", Array(arrays.dropFirst()) + [("unrelated", NDArray([Float](repeating: 0, count: 4), shape: [4]))])
        try npz("zero-rows", mapped { a in NDArray(zeros: a.dtype, shape: [0] + a.shape.dropFirst()) })
        // A small file whose .npy header claims 4 PB of data: a valid archive of one array whose
        // header text is rewritten in place (same length, so the zip stays well formed).
        let absurd = dir.appendingPathComponent("\(model).absurd-header.npz")
        try NPZ.write([(arrays[0].name, NDArray(zeros: .float, shape: [1]))], to: absurd)
        var zip = try Data(contentsOf: absurd)
        let open = try #require(zip.range(of: Data("{'descr'".utf8))), close = try #require(zip[open.lowerBound...].firstIndex(of: 0x0A))
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }"
        header += String(repeating: " ", count: close - open.lowerBound - header.utf8.count)
        zip.replaceSubrange(open.lowerBound..<close, with: Data(header.utf8))
        try zip.write(to: absurd)
        out.append(("absurd-header", absurd))
        // An ONNX test_data_set whose tensor claims 8 PB in 64 bytes of raw data.
        var t = Onnx_TensorProto()
        t.name = arrays[0].name
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.dims = [100_000, 100_000, 100_000]
        t.rawData = Data(count: 64)
        let set = dir.appendingPathComponent("\(model).pb-absurd-dims/test_data_set_0")
        try FileManager.default.createDirectory(at: set, withIntermediateDirectories: true)
        try t.serializedData().write(to: set.appendingPathComponent("input_0.pb"))
        out.append(("pb-absurd-dims", set.deletingLastPathComponent()))
        let folder = dir.appendingPathComponent("\(model).a-directory.npz")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        out.append(("a-directory", folder))
        return out
    }

    @Test func hostileCalibrationFiles() throws {
        let dir = try CLI.temporaryDirectory("hostile-data")
        defer { try? FileManager.default.removeItem(at: dir) }
        var failures: [String] = [], runs = 0, statuses: [Int32: Int] = [:]
        for model in Self.models {
            let path = "examples/models/\(model).onnx"
            for (name, file) in try Self.hostileFiles(for: model, in: dir) {
                let out = dir.appendingPathComponent("out.onnx"), outputs = dir.appendingPathComponent("out.npz")
                let commands: [(String, [String], URL)] = [
                    ("magnitude", [path, "--pass", "magnitude{sparsity=0.3},fold-masks", "--calib", file.path, "-o", out.path, "--runs", "1"], out),
                    ("fluctuation", [path, "--pass", "fluctuation{sparsity=0.3}", "--calib", file.path, "-o", out.path, "--no-validate"], out),
                    ("run", ["run", path, "--inputs", file.path, "-o", outputs.path], outputs),
                ]
                for (label, args, output) in commands {
                    let r = try Self.run(args)
                    runs += 1
                    statuses[r.status ?? -1, default: 0] += 1
                    if let f = Self.judge("\(model) \(label) \(name)", r, output: output) { failures.append(f) }
                    // Non-finite data that a model accepts is worth a warning on compile (the
                    // float-input models; the token models take no NaN).
                    if ["nan", "inf"].contains(name) && ["unet", "resnet"].contains(model) && label != "run" && r.status == 0 && !r.stderr.contains("has a non-finite value") {
                        failures.append("\(model) \(label) \(name): accepted without a warning")
                    }
                }
            }
        }
        print("hostile calibration files: \(runs) runs, exit codes \(statuses.sorted { $0.key < $1.key })")
        #expect(runs == Self.models.count * 15 * 3)
        #expect(failures.isEmpty, "\(failures.count) of \(runs) runs: \(failures.joined(separator: "\n"))")
    }

    @Test func extremeOptionValues() throws {
        let dir = try CLI.temporaryDirectory("hostile-options")
        defer { try? FileManager.default.removeItem(at: dir) }
        let passes = try CLI.run(["passes", "--options"]).stdout.split(separator: "\n")
        var options: [(pass: String, key: String)] = []
        var current = ""
        for line in passes {
            if !line.hasPrefix(" ") { current = String(line.split(separator: " ").first ?? "") }
            let t = line.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("    "), t.contains("=<an integer>") || t.contains("=<a number>") || t.contains("=<a fraction") else { continue }
            options.append((current, String(t.prefix { $0 != "=" })))
        }
        #expect(options.count > 50)
        var failures: [String] = [], runs = 0, statuses: [Int32: Int] = [:]
        let out = dir.appendingPathComponent("out.onnx")
        for (pass, key) in options {
            for value in ["-1", "0", "nan", "1e30", "lots"] {
                let r = try Self.run(["examples/models/llama.onnx", "--pass", "\(pass){\(key)=\(value)}", "--calib", "examples/models/llama.calib.npz",
                                      "-o", out.path, "--no-validate"])
                runs += 1
                statuses[r.status ?? -1, default: 0] += 1
                if let f = Self.judge("\(pass){\(key)=\(value)}", r, output: out) { failures.append(f) }
                if ["nan", "1e30", "lots", "-1"].contains(value) && r.status == 0 && !(pass == "reconstruct" && key == "max-features") {
                    failures.append("\(pass){\(key)=\(value)} was accepted")
                }
            }
        }
        print("extreme option values: \(runs) runs over \(options.count) options, exit codes \(statuses.sorted { $0.key < $1.key })")
        #expect(failures.isEmpty, "\(failures.count) of \(runs) runs: \(failures.joined(separator: "\n"))")
    }

    /// kill -9 while a few hundred MB (model and external data) are being written: the previous
    /// output stays whole, and the next run that writes it removes the dead writers' temp files.
    @Test func killDuringALargeWriteLosesNothing() throws {
        guard let python = OracleTests.python else {
            Issue.record("oracle venv missing: run `make test`")
            return
        }
        let dir = try CLI.temporaryDirectory("kill-write")
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = dir.appendingPathComponent("big.onnx")
        let make = """
            import numpy as np, onnx, sys
            from onnx import helper, numpy_helper, TensorProto
            w = [numpy_helper.from_array(np.full((2048, 2048), i + 1, np.float32), f"w{i}") for i in range(16)]
            nodes, x = [], "x"
            for i in range(16):
                nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"])); x = f"h{i}"
            g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2048])],
                                  [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 2048])], w)
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), sys.argv[1],
                      save_as_external_data=True, location="big.onnx.data")
            """
        let g = try CLI.exec(URL(fileURLWithPath: python), ["-c", make, big.path])
        try #require(g.status == 0, "\(g.stderr)")
        let out = dir.appendingPathComponent("out.onnx"), data = dir.appendingPathComponent("out.onnx.data")
        let args = [big.path, "-o", out.path, "--external-data", "always"]
        let first = try Self.run(args)
        try #require(first.status == 0, "\(first.stderr)")
        let modelBytes = try Data(contentsOf: out)
        let dataSize = try FileManager.default.attributesOfItem(atPath: data.path)[.size] as? Int ?? 0
        #expect(dataSize > 200 << 20, "the data file has \(dataSize) bytes")
        // Kill points spread over the time a whole run takes here (import, then the two writes).
        var killed = 0, leftBehind = 0
        func temps() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".out.onnx") } }
        for delay in stride(from: 0.1, through: 0.95, by: 0.07).map({ $0 * first.seconds }) {
            let p = Process()
            p.executableURL = CLI.binary
            p.arguments = args
            p.standardError = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: delay)
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                killed += 1
            }
            p.waitUntilExit()
            // The same input writes the same bytes, so whatever the kill interrupted, the pair on
            // disk is the previous output (or an identical new one), never a partial file.
            #expect(try Data(contentsOf: out) == modelBytes, "model changed after a kill at \(delay) s")
            let size = try FileManager.default.attributesOfItem(atPath: data.path)[.size] as? Int ?? 0
            #expect(size == dataSize, "data file has \(size) bytes after a kill at \(delay) s, was \(dataSize)")
            // Each run removes what earlier killed runs left, so count what this kill left.
            leftBehind = max(leftBehind, try temps().count)
        }
        #expect(killed >= 4, "only \(killed) runs were still running when killed")
        let last = try Self.run(args)
        #expect(last.status == 0, "\(last.stderr)")
        let leftovers = try temps()
        #expect(leftovers.isEmpty, "temp files left: \(leftovers)")
        let check = try CLI.exec(URL(fileURLWithPath: python), ["-c", "import onnx,sys; onnx.checker.check_model(sys.argv[1])", out.path])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(leftBehind > 0, "no kill landed while the temp files existed: the cleanup was not exercised")
        print("kill -9 during a \(dataSize >> 20) MiB write (a run takes \(String(format: "%.2f", first.seconds)) s): \(killed) runs killed, "
              + "previous output intact, up to \(leftBehind) temp files of a dead writer, none after the next run")
    }
}
