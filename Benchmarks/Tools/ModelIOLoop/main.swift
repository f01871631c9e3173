// A plain loop over PruneIR's import/export, for profilers (perf, valgrind) and quick checks;
// the numbers to report come from the ModelIO benchmark suite (scripts/bench-io.sh).
//
//   swift build --package-path Benchmarks -c release --product ModelIOLoop
//   Benchmarks/.build/release/ModelIOLoop load|serialize|write|load+write MODEL.onnx [ITERATIONS] [OUT.onnx]
//
// `load+write-nosync` is a diagnostic: load, ModelExporter.serialize, write a temp file and rename
// it, like ModelExporter.write without its fsync (to see what the fsync costs).
//
// Prints one JSON object: the operation, the model, the iterations and the median/min in ms.

import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PruneIR

let args = CommandLine.arguments
guard args.count >= 3, ["load", "serialize", "write", "load+write", "load+write-nosync"].contains(args[1]) else {
    FileHandle.standardError.write(Data("usage: ModelIOLoop load|serialize|write|load+write MODEL.onnx [ITERATIONS] [OUT.onnx]\n".utf8))
    exit(64)
}
let operation = args[1]
let url = URL(fileURLWithPath: args[2])
let iterations = args.count > 3 ? max(1, Int(args[3]) ?? 20) : 20
let out = URL(fileURLWithPath: args.count > 4 ? args[4] : NSTemporaryDirectory() + "/ModelIOLoop.onnx")

do {
    let loaded = try ModelImporter.load(contentsOf: url)
    var samples: [Double] = []
    samples.reserveCapacity(iterations)
    let clock = ContinuousClock()
    for _ in 0 ..< iterations {
        let elapsed = try clock.measure {
            switch operation {
            case "load": _ = try ModelImporter.load(contentsOf: url)
            case "serialize": _ = try ModelExporter.serialize(loaded)
            case "write": try ModelExporter.write(loaded, to: out)
            case "load+write-nosync":
                let bytes = try ModelExporter.serialize(try ModelImporter.load(contentsOf: url))
                let temp = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).tmp")
                try bytes.write(to: temp)
                guard rename(temp.path, out.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
            default: try ModelExporter.write(try ModelImporter.load(contentsOf: url), to: out)
            }
        }
        samples.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) * 1e-15)
    }
    samples.sort()
    let median = samples.count % 2 == 1 ? samples[samples.count / 2] : (samples[samples.count / 2 - 1] + samples[samples.count / 2]) / 2
    let json: [String: Any] = [
        "operation": operation, "model": url.path, "iterations": iterations,
        "median_ms": median, "min_ms": samples[0],
    ]
    let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("ModelIOLoop: \(error)\n".utf8))
    exit(65)
}
