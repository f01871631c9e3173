import Foundation
import Testing

/// Plugins end to end: `examples/plugin` is built as its own package (once per test run, into
/// `.build-plugin-example/`), loaded with `--plugin` and `PRUNEC_PLUGIN_PATH`, and its `wanda`
/// pass prunes example models; libraries that are not valid plugins are refused before any model
/// is read.
@Suite(.serialized) struct PluginTests {
    /// The example plugin library, built once (`swift build --package-path examples/plugin`).
    static let plugin: Result<String, PluginBuildError> = {
        let scratch = CLI.repoRoot.appendingPathComponent(".build-plugin-example").path
        let start = Date()
        var build: CLI.Result
        do {
            let args = ["swift", "build", "--package-path", "examples/plugin", "--scratch-path", scratch]
            build = try CLI.exec(URL(fileURLWithPath: "/usr/bin/env"), args)
            // SwiftPM can keep a stale list of a path dependency's sources (a file added to
            // PruneKit since the last build is then "not in scope"): build once more from clean.
            if build.status != 0 {
                try? FileManager.default.removeItem(atPath: scratch)
                build = try CLI.exec(URL(fileURLWithPath: "/usr/bin/env"), args)
            }
        } catch {
            return .failure(PluginBuildError(log: "\(error)"))
        }
        guard build.status == 0 else { return .failure(PluginBuildError(log: build.stdout + build.stderr)) }
        let lib = URL(fileURLWithPath: scratch).appendingPathComponent("debug/libWandaPasses.so").path
        guard FileManager.default.fileExists(atPath: lib) else { return .failure(PluginBuildError(log: "no \(lib) after the build")) }
        print("examples/plugin built in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        return .success(lib)
    }()

    struct PluginBuildError: Error, CustomStringConvertible {
        let log: String
        var description: String { "examples/plugin did not build:\n\(log)" }
    }

    /// A model and options for the plugin's pass.
    static let cases = [
        PassCase(model: "bert", options: "sparsity=0.3"),
        PassCase(model: "resnet", options: "sparsity=0.3"),
    ]

    @Test func passesListsThePluginPassWithItsOrigin() throws {
        let lib = try Self.plugin.get()
        let r = try CLI.run(["passes", "--plugin", lib, "--options"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("wanda ") }
        #expect(line?.contains("[plugin: \(lib)]") == true, "\(r.stdout)")
        #expect(r.stdout.contains("    sparsity="))
        // Built-in passes are still there, without an origin.
        #expect(r.stdout.split(separator: "\n").contains { $0.hasPrefix("magnitude ") && !$0.contains("[plugin") })
    }

    @Test(arguments: cases)
    func wandaFromThePluginPrunesAndRunsInOnnxruntime(_ c: PassCase) throws {
        let lib = try Self.plugin.get()
        let dir = try CLI.temporaryDirectory("plugin-\(c.model)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = "examples/models/\(c.model).onnx", calib = "examples/models/\(c.model).calib.npz"
        let out = dir.appendingPathComponent("pruned.onnx").path
        let r = try CLI.run([model, "--plugin", lib, "--pass", "wanda{\(c.options)}", "--pass", "fold-masks", "-o", out, "--calib", calib])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("wanda{\(c.options)}"), "\(r.stdout)")
        guard r.status == 0 else { return }
        #expect(try params(out) < params(model))
        if OracleTests.python != nil { try expectValidAndRunsInOnnxruntime(model, out, calib) }
    }

    /// The plugin is copied alone into an empty folder, without the libPruneKitDynamic.so that
    /// SwiftPM built beside it: it still loads and runs, so the PruneKit it uses is prunec's
    /// (the loader satisfies its `NEEDED libPruneKitDynamic.so` with prunec's soname), and the
    /// registrar's metadata-identity check passed (it would refuse a second copy).
    @Test func pluginPathVariableLoadsAPluginThatUsesPrunecsPruneKit() throws {
        let built = try Self.plugin.get()
        let dir = try CLI.temporaryDirectory("plugin-env")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lib = dir.appendingPathComponent("libWandaPasses.so").path
        try FileManager.default.copyItem(atPath: built, toPath: lib)
        let out = dir.appendingPathComponent("pruned.onnx").path
        let r = try run(["examples/models/bert.onnx", "--pass", "wanda{sparsity=0.25},fold-masks", "-o", out, "--no-validate"],
                        environment: ["PRUNEC_PLUGIN_PATH": "::\(lib):"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try params(out) < params("examples/models/bert.onnx"))
    }

    @Test func aFileThatIsNoLibraryIsAUsageError() throws {
        let dir = try CLI.temporaryDirectory("plugin-text")
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("notes.so")
        try "not a library\n".write(to: text, atomically: true, encoding: .utf8)
        try expectRefused(plugins: [text.path], status: 64, mentions: ["notes.so", "not a loadable dynamic library"], in: dir)
        try expectRefused(plugins: [dir.appendingPathComponent("missing.so").path], status: 64, mentions: ["missing.so", "no such file"], in: dir)
    }

    @Test func aLibraryWithoutTheEntryPointIsRefused() throws {
        let dir = try CLI.temporaryDirectory("plugin-noentry")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lib = try compileC("int prunec_something_else(void) { return 1; }\n", named: "libnoentry.so", in: dir)
        try expectRefused(plugins: [lib], status: 65, mentions: ["libnoentry.so", "does not export prunec_plugin_register", "undefined symbol"], in: dir)
    }

    /// The PruneKit library SwiftPM builds beside the plugin is a Swift library, not a plugin: it
    /// is refused like any library without the entry point. It used to crash prunec (signal 11):
    /// the loader unloaded it after the failed lookup, and the Swift runtime then read the
    /// conformance records of the unmapped image.
    @Test func thePruneKitLibraryBesideThePluginIsRefusedWithoutACrash() throws {
        let built = try Self.plugin.get()
        let lib = URL(fileURLWithPath: built).deletingLastPathComponent().appendingPathComponent("libPruneKitDynamic.so").path
        try #require(FileManager.default.fileExists(atPath: lib), "SwiftPM no longer builds \(lib)")
        let dir = try CLI.temporaryDirectory("plugin-prunekit")
        defer { try? FileManager.default.removeItem(at: dir) }
        try expectRefused(plugins: [lib], status: 65, mentions: ["libPruneKitDynamic.so", "does not export prunec_plugin_register"], in: dir)
        // A good plugin after the refused library: the refused one is never loaded into the registry.
        let p = try CLI.run(["passes", "--plugin", lib, "--plugin", built])
        #expect(p.status == 65, "\(p.stderr)")
        #expect(!p.stdout.contains("wanda "))
    }

    @Test func aLibraryOfAnotherAPIVersionIsRefused() throws {
        let dir = try CLI.temporaryDirectory("plugin-version")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Registers nothing and answers version 999.
        let lib = try compileC("int prunec_plugin_register(void *handle) { (void)handle; return 999; }\n", named: "libfuture.so", in: dir)
        try expectRefused(plugins: [lib], status: 65, mentions: ["libfuture.so", "API version 999", "rebuild the plugin"], in: dir)
    }

    @Test func aDuplicatePassNameIsRefused() throws {
        let lib = try Self.plugin.get()
        let dir = try CLI.temporaryDirectory("plugin-duplicate")
        defer { try? FileManager.default.removeItem(at: dir) }
        try expectRefused(plugins: [lib, lib], status: 65, mentions: ["registers pass 'wanda'", "the same plugin (loaded twice?) already registers"], in: dir)
    }

    // MARK: helpers

    /// Compiles `source` into a shared library in `dir` (`cc -shared -fPIC`).
    func compileC(_ source: String, named name: String, in dir: URL) throws -> String {
        let c = dir.appendingPathComponent(name + ".c")
        try source.write(to: c, atomically: true, encoding: .utf8)
        let lib = dir.appendingPathComponent(name).path
        let r = try CLI.exec(URL(fileURLWithPath: "/usr/bin/env"), ["cc", "-shared", "-fPIC", "-o", lib, c.path])
        try #require(r.status == 0, "cc: \(r.stderr)")
        return lib
    }

    /// Runs a compile with `plugins` and expects exit `status`, every phrase of `mentions` on
    /// stderr, and no output file; `prunec passes` with the same plugins must exit the same.
    func expectRefused(plugins: [String], status: Int32, mentions: [String], in dir: URL) throws {
        let out = dir.appendingPathComponent("out.onnx")
        let r = try CLI.run(["examples/models/resnet.onnx"] + plugins.flatMap { ["--plugin", $0] } + ["--pass", "fold-masks", "-o", out.path])
        #expect(r.status == status, "\(r.stderr)")
        for m in mentions { #expect(r.stderr.contains(m), "\(m) not in: \(r.stderr)") }
        #expect(!FileManager.default.fileExists(atPath: out.path))
        let p = try CLI.run(["passes"] + plugins.flatMap { ["--plugin", $0] })
        #expect(p.status == status, "\(p.stderr)")
    }

    /// Runs prunec with extra environment variables.
    func run(_ arguments: [String], environment: [String: String]) throws -> CLI.Result {
        try CLI.exec(URL(fileURLWithPath: "/usr/bin/env"), environment.map { "\($0.key)=\($0.value)" } + [CLI.binary.path] + arguments)
    }

    /// The parameter count `prunec inspect --json` reports.
    func params(_ model: String) throws -> Int {
        let r = try CLI.run(["inspect", model, "--json", "--no-check"])
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return try #require(object?["params"] as? Int, "\(r.stderr)")
    }
}
