import Foundation

/// Paths the tests use, found from this file's location (no machine paths).
public enum TestPaths {
    public static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let examples = repoRoot.appendingPathComponent("examples/models")

    public static var exampleModels: [URL] {
        let files = (try? FileManager.default.contentsOfDirectory(at: examples, includingPropertiesForKeys: nil)) ?? []
        return files.filter { $0.pathExtension == "onnx" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// The folder of generated ONNX node tests (`make test` sets PRUNEC_NODE_TESTS).
    public static var nodeTests: URL? {
        if let p = ProcessInfo.processInfo.environment["PRUNEC_NODE_TESTS"], !p.isEmpty { return URL(fileURLWithPath: p) }
        let local = repoRoot.appendingPathComponent(".cache/onnx-node-tests/node")
        return FileManager.default.fileExists(atPath: local.path) ? local : nil
    }

    public static func temporaryDirectory(_ label: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prunec-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
