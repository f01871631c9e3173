import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Temp-file-then-rename writes, so a failed run never leaves a partial file behind.
enum AtomicFile {
    /// Writes through `body` into a new temporary file next to `destination` and returns its URL.
    /// The temporary file is removed when `body` throws.
    static func writeTemporary(near destination: URL, _ body: (FileHandle) throws -> Void) throws -> URL {
        let dir = destination.deletingLastPathComponent()
        let temp = dir.appendingPathComponent(".\(destination.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        guard FileManager.default.createFile(atPath: temp.path, contents: nil) else {
            let reason = String(cString: strerror(errno))
            throw ONNXExportError.writeFailed(file: destination.relativePath, reason: reason)
        }
        do {
            let handle = try FileHandle(forWritingTo: temp)
            defer { try? handle.close() }
            try body(handle)
            try handle.synchronize()
        } catch {
            discard(temp)
            throw ONNXExportError.writeFailed(file: destination.relativePath, reason: "\(error.localizedDescription)")
        }
        return temp
    }

    /// Renames a finished temporary file over `destination`.
    static func commit(_ temp: URL, to destination: URL) throws {
        if rename(temp.path, destination.path) != 0 {
            let reason = String(cString: strerror(errno))
            discard(temp)
            throw ONNXExportError.writeFailed(file: destination.relativePath, reason: reason)
        }
    }

    /// Hard-links an existing file to a hidden backup name; `nil` when there is no file.
    static func backup(_ url: URL) -> URL? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let b = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).bak-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        return link(url.path, b.path) == 0 ? b : nil
    }

    /// Puts a backup made by ``backup(_:)`` back in place.
    static func restore(_ backup: URL, to url: URL) {
        if rename(backup.path, url.path) != 0 { discard(backup) }
    }

    static func discard(_ temp: URL) {
        unlink(temp.path)
    }
}
