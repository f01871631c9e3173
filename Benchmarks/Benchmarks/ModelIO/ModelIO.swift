// ONNX import/export speed of PruneIR (ordo-one/benchmark suite "ModelIO").
//
// For every model it finds, three benchmarks:
//   "load <model>"        ModelImporter.load(contentsOf:)            (map, decode ModelProto, build the IR)
//   "serialize <model>"   ModelExporter.serialize(_:) of a loaded model (IR -> ModelProto -> bytes)
//   "load+write <model>"  load, then ModelExporter.write(_:to:)        (atomic temp file + fsync + rename)
//
// Models: every `*.onnx` in examples/models and in .cache/bench (the large generated model that
// scripts/bench-io.sh makes), or the files and folders listed in PRUNEC_BENCH_MODELS
// (colon-separated). Written files go to PRUNEC_BENCH_OUT (default .cache/bench/out).
//
// Run: `swift package --package-path Benchmarks benchmark --target ModelIO`, or
// `bash scripts/bench-io.sh` for the table against Python's onnx.load/onnx.save.

import Benchmark
import Foundation
import PruneIR

/// The repository root, found from this file's path (Benchmarks/Benchmarks/ModelIO/ModelIO.swift).
private let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // ModelIO
    .deletingLastPathComponent()  // Benchmarks (sources)
    .deletingLastPathComponent()  // Benchmarks (package)
    .deletingLastPathComponent()  // repository root

private func benchmarkModels() -> [URL] {
    let env = ProcessInfo.processInfo.environment
    let roots: [URL]
    if let list = env["PRUNEC_BENCH_MODELS"], !list.isEmpty {
        roots = list.split(separator: ":").map { URL(fileURLWithPath: String($0), relativeTo: repositoryRoot).standardizedFileURL }
    } else {
        roots = [
            repositoryRoot.appendingPathComponent("examples/models"),
            repositoryRoot.appendingPathComponent(".cache/bench"),
        ]
    }
    var models: [URL] = []
    for root in roots {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir) else { continue }
        if !isDir.boolValue {
            models.append(root)
            continue
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        for name in names.sorted() where name.hasSuffix(".onnx") {
            models.append(root.appendingPathComponent(name))
        }
    }
    return models
}

private func outputDirectory() -> URL {
    let env = ProcessInfo.processInfo.environment
    let dir = env["PRUNEC_BENCH_OUT"].map { URL(fileURLWithPath: $0, relativeTo: repositoryRoot) }
        ?? repositoryRoot.appendingPathComponent(".cache/bench/out")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

private func fileSize(_ url: URL) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
}

/// A model loaded once in a benchmark's setup, for the benchmarks that measure export alone.
private final class LoadedModel: @unchecked Sendable {
    let url: URL
    var model: Model?
    init(url: URL) { self.url = url }
}

let benchmarks: @Sendable () -> Void = {
    // Throughput is there because the JMH export (what scripts/bench-io.sh reads) requires it.
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident]
    Benchmark.defaultConfiguration = .init(
        metrics: metrics,
        timeUnits: .microseconds,
        warmupIterations: 2,
        maxDuration: .seconds(1),
        maxIterations: 200
    )
    let out = outputDirectory()

    for url in benchmarkModels() {
        let name = url.deletingPathExtension().lastPathComponent
        // Large models: fewer, longer samples.
        let large = fileSize(url) > 32 << 20
        let config = Benchmark.Configuration(
            warmupIterations: large ? 1 : 2,
            maxDuration: .seconds(large ? 4 : 1),
            maxIterations: large ? 10 : 200
        )

        Benchmark("load \(name)", configuration: config) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try ModelImporter.load(contentsOf: url))
            }
        }

        let loaded = LoadedModel(url: url)
        var serializeConfig = config
        serializeConfig.setup = { loaded.model = try ModelImporter.load(contentsOf: url) }
        serializeConfig.teardown = { loaded.model = nil }
        Benchmark("serialize \(name)", configuration: serializeConfig) { benchmark in
            guard let model = loaded.model else { throw CocoaError(.fileReadUnknown) }
            for _ in benchmark.scaledIterations {
                blackHole(try ModelExporter.serialize(model))
            }
        }

        let target = out.appendingPathComponent("\(name).swift.onnx")
        Benchmark("load+write \(name)", configuration: config) { benchmark in
            for _ in benchmark.scaledIterations {
                let model = try ModelImporter.load(contentsOf: url)
                try ModelExporter.write(model, to: target)
            }
        }
    }
}
