import Foundation
import PruneTestSupport
import Testing

import PruneIR

/// `AtomicFile`: complete writes or none, errors that name the file, no temporary files left.
@Suite struct AtomicFileTests {
    private static func hiddenFiles(in dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
    }

    private struct Stop: Error {}

    /// Temp and backup files of writers that were killed are removed by the next write of the same
    /// file; those of live processes (this one) and of other files stay.
    @Test func deadWritersTempFilesAreRemovedByTheNextWrite() throws {
        let dir = try TestPaths.temporaryDirectory("atomic-stale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = finished.processIdentifier, alive = ProcessInfo.processInfo.processIdentifier
        let names = [".out.onnx.tmp-\(dead)-17", ".out.onnx.bak-\(dead)-18", ".out.onnx.tmp-\(alive)-19", ".other.onnx.tmp-\(dead)-20",
                     ".out.onnx.tmp-x-1"]
        for n in names { try Data([1]).write(to: dir.appendingPathComponent(n)) }
        try AtomicFile.write(Data([2]), to: dir.appendingPathComponent("out.onnx"))
        let left = Set(try Self.hiddenFiles(in: dir))
        #expect(left == [".out.onnx.tmp-\(alive)-19", ".other.onnx.tmp-\(dead)-20", ".out.onnx.tmp-x-1"])
    }

    @Test func writesAndReplacesData() throws {
        let dir = try TestPaths.temporaryDirectory("atomic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("report.json")
        try AtomicFile.write(Data("{\"a\": 1}".utf8), to: url)
        #expect(try Data(contentsOf: url) == Data("{\"a\": 1}".utf8))
        try AtomicFile.write(Data([0, 1, 2]), to: url)
        #expect(try Data(contentsOf: url) == Data([0, 1, 2]))
        #expect(try Self.hiddenFiles(in: dir).isEmpty)
    }

    @Test func failingBodyLeavesTheOldFile() throws {
        let dir = try TestPaths.temporaryDirectory("atomic-body")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("out.bin")
        try AtomicFile.write(Data([7, 7]), to: url)
        #expect(throws: AtomicFileError.self) {
            try AtomicFile.write(to: url) { handle in
                try handle.write(contentsOf: Data([1, 2, 3]))
                throw Stop()
            }
        }
        #expect(try Data(contentsOf: url) == Data([7, 7]))
        #expect(try Self.hiddenFiles(in: dir).isEmpty)
    }

    @Test func missingFolderErrorNamesTheFile() throws {
        let dir = try TestPaths.temporaryDirectory("atomic-missing")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("missing/out.txt")
        do {
            try AtomicFile.write(Data("x".utf8), to: url, displayName: "missing/out.txt")
            Issue.record("writing into a missing folder succeeded")
        } catch let e as AtomicFileError {
            #expect(e.file == "missing/out.txt")
            #expect(e.description.hasPrefix("missing/out.txt: cannot write: "))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func failedRenameRemovesTheTemporaryFile() throws {
        let dir = try TestPaths.temporaryDirectory("atomic-rename")
        defer { try? FileManager.default.removeItem(at: dir) }
        // The destination is a non-empty folder: the temporary file is written, the rename fails.
        let url = dir.appendingPathComponent("taken")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("inside"), withIntermediateDirectories: true)
        #expect(throws: AtomicFileError.self) { try AtomicFile.write(Data([1]), to: url) }
        #expect(try Self.hiddenFiles(in: dir).isEmpty)
    }
}
