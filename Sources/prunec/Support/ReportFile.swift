import Foundation
import PruneIR

/// Report files written next to stdout (`--output`).
enum ReportFile {
    /// Writes `text` to `path` through a temporary file and a rename: no partial file on failure.
    static func write(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ONNXExportError.writeFailed(file: path, reason: (error as NSError).localizedDescription)
        }
    }
}
