import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file that could not be written; nothing was left behind at its path.
public struct AtomicFileError: Error, Equatable, CustomStringConvertible {
    /// The file as the caller named it.
    public var file: String
    /// What went wrong (the system's message).
    public var reason: String

    /// An error about writing `file`.
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }

    public var description: String { "\(file): cannot write: \(reason)" }
}

/// Temp-file-then-rename writes, so a failed run never leaves a partial file behind.
///
/// The temporary file is hidden (`.<name>.tmp-<pid>-<random>`) in the destination's folder, so
/// the final rename stays on one file system and is atomic: readers see the old file or the
/// complete new one. Every failure is an ``AtomicFileError`` naming the file.
///
/// ```swift
/// try AtomicFile.write(Data(report.utf8), to: URL(fileURLWithPath: "report.json"))
/// ```
///
/// Writers that produce several files, or that let a library create the file (a zip archive),
/// use the steps: ``temporaryURL(near:)`` or ``writeTemporary(near:displayName:_:)``, then
/// ``commit(_:to:displayName:)``, or ``discard(_:)`` on failure.
public enum AtomicFile {
    /// Writes `data` to `url` atomically.
    ///
    /// - Parameters:
    ///   - data: The complete contents.
    ///   - url: The destination; its folder must exist.
    ///   - displayName: How errors name the file (defaults to the path as given).
    /// - Throws: ``AtomicFileError``; on a throw the file at `url` is unchanged.
    public static func write(_ data: Data, to url: URL, displayName: String? = nil) throws {
        try write(to: url, displayName: displayName) { try $0.write(contentsOf: data) }
    }

    /// Writes `url` atomically through `body`, which receives a handle on the temporary file.
    ///
    /// - Throws: ``AtomicFileError``, or the error `body` threw if it is one; on a throw the file
    ///   at `url` is unchanged.
    public static func write(to url: URL, displayName: String? = nil, _ body: (FileHandle) throws -> Void) throws {
        let temp = try writeTemporary(near: url, displayName: displayName, body)
        try commit(temp, to: url, displayName: displayName)
    }

    /// A new hidden temporary name in `destination`'s folder (nothing is created). The temporary
    /// and backup files that earlier writers of `destination` left behind when they were killed
    /// (their process is gone) are removed first.
    public static func temporaryURL(near destination: URL) -> URL {
        removeStale(near: destination)
        return destination.deletingLastPathComponent()
            .appendingPathComponent(".\(destination.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
    }

    /// Removes `.<name>.tmp-<pid>-<n>` and `.<name>.bak-<pid>-<n>` files of `destination` whose
    /// writer process no longer exists (a run killed with SIGKILL cannot clean up after itself).
    /// Files of live processes, this one included, are left alone.
    ///
    /// - Returns: The names removed.
    @discardableResult
    public static func removeStale(near destination: URL) -> [String] {
        let folder = destination.deletingLastPathComponent()
        let prefix = ".\(destination.lastPathComponent)."
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            guard rest.hasPrefix("tmp-") || rest.hasPrefix("bak-") else { continue }
            let fields = rest.dropFirst(4).split(separator: "-")
            guard fields.count == 2, let pid = pid_t(fields[0]), pid > 0, UInt32(fields[1]) != nil, pid != getpid() else { continue }
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
            if unlink(folder.appendingPathComponent(name).path) == 0 { removed.append(name) }
        }
        return removed
    }

    /// Writes through `body` into a new temporary file next to `destination` and returns its URL,
    /// to be passed to ``commit(_:to:displayName:)``. The temporary file is removed when `body`
    /// throws.
    ///
    /// - Throws: ``AtomicFileError`` naming `destination`.
    public static func writeTemporary(near destination: URL, displayName: String? = nil,
                                      _ body: (FileHandle) throws -> Void) throws -> URL {
        let file = displayName ?? destination.relativePath
        let temp = temporaryURL(near: destination)
        guard FileManager.default.createFile(atPath: temp.path, contents: nil) else {
            throw AtomicFileError(file: file, reason: String(cString: strerror(errno)))
        }
        do {
            let handle = try FileHandle(forWritingTo: temp)
            defer { try? handle.close() }
            try body(handle)
            try handle.synchronize()
        } catch let e as AtomicFileError {
            discard(temp)
            throw e
        } catch {
            discard(temp)
            throw AtomicFileError(file: file, reason: error.localizedDescription)
        }
        return temp
    }

    /// Renames a finished temporary file over `destination`; the temporary file is removed when
    /// the rename fails.
    ///
    /// - Throws: ``AtomicFileError`` naming `destination`.
    public static func commit(_ temp: URL, to destination: URL, displayName: String? = nil) throws {
        if rename(temp.path, destination.path) != 0 {
            let reason = String(cString: strerror(errno))
            discard(temp)
            throw AtomicFileError(file: displayName ?? destination.relativePath, reason: reason)
        }
    }

    /// Removes a temporary (or backup) file, ignoring a file that is already gone.
    public static func discard(_ temp: URL) {
        unlink(temp.path)
    }

    /// Hard-links an existing file to a hidden backup name; `nil` when there is no file.
    /// Used by writers of two files (model and data) to undo the first rename if the second fails.
    static func backup(_ url: URL) -> URL? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let b = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).bak-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        return link(url.path, b.path) == 0 ? b : nil
    }

    /// Puts a backup made by ``backup(_:)`` back in place.
    static func restore(_ backup: URL, to url: URL) {
        if rename(backup.path, url.path) != 0 { discard(backup) }
    }
}
