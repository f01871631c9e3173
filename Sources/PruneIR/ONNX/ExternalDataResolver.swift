import Foundation
import ONNXProto

/// Resolves `TensorProto.external_data` entries to slices of memory-mapped files.
///
/// A model must not read arbitrary files: a `location` must be a relative path whose resolved
/// form (symlinks followed) stays inside the model's folder. Offsets and lengths are checked
/// against the file's real size before a slice is made. Each data file is mapped once.
final class ExternalDataResolver {
    let baseDirectory: URL?
    let file: String
    private var mapped: [String: MappedFile] = [:]

    init(baseDirectory: URL?, file: String) {
        self.baseDirectory = baseDirectory
        self.file = file
    }

    /// The reference and the bytes of an external tensor.
    ///
    /// - Parameter expectedBytes: the size the tensor's type and shape need; `nil` skips the check.
    func resolve(_ tp: Onnx_TensorProto, tensor: String, expectedBytes: Int?) throws -> (ExternalDataReference, Data) {
        func fail(_ reason: String) -> ONNXImportError {
            ONNXImportError.externalData(file: file, tensor: tensor, reason: reason)
        }
        var location: String?
        var offset = 0
        var length: Int?
        for e in tp.externalData {
            switch e.key {
            case "location": location = e.value
            case "offset":
                guard let o = Int(e.value), o >= 0 else { throw fail("offset '\(e.value)' is not a non-negative integer") }
                offset = o
            case "length":
                guard let l = Int(e.value), l >= 0 else { throw fail("length '\(e.value)' is not a non-negative integer") }
                length = l
            default: continue
            }
        }
        guard let location, !location.isEmpty else { throw fail("no location is given") }
        guard let baseDirectory else { throw fail("'\(location)' cannot be resolved: the model was not loaded from a file") }
        let data = try mappedFile(location, base: baseDirectory, fail: fail)
        let len = length ?? (expectedBytes ?? (data.size - offset))
        guard offset <= data.size, len <= data.size - offset else {
            throw fail("'\(location)' has \(data.size) bytes, the tensor needs bytes \(offset)..<\(offset + len) (is the data file truncated?)")
        }
        if let expectedBytes, len != expectedBytes {
            throw fail("length \(len) does not match the \(expectedBytes) bytes its type and shape need")
        }
        return (ExternalDataReference(location: location, offset: offset, length: len), data.bytes(offset: offset, length: len))
    }

    private func mappedFile(_ location: String, base: URL, fail: (String) -> ONNXImportError) throws -> MappedFile {
        if let m = mapped[location] { return m }
        guard !location.hasPrefix("/"), !location.hasPrefix("\\") else {
            throw fail("location '\(location)' is an absolute path; only paths inside the model's folder are allowed")
        }
        let parts = location.split(whereSeparator: { $0 == "/" || $0 == "\\" })
        guard !parts.contains("..") else {
            throw fail("location '\(location)' leaves the model's folder")
        }
        let url = base.appendingPathComponent(location)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw fail("data file '\(location)' does not exist next to the model")
        }
        let root = base.resolvingSymlinksInPath().standardizedFileURL.path
        let real = url.resolvingSymlinksInPath().standardizedFileURL.path
        guard real.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw fail("location '\(location)' resolves outside the model's folder")
        }
        do {
            let m = try MappedFile(url: url)
            mapped[location] = m
            return m
        } catch let e as MappedFileError {
            throw fail("cannot map '\(location)': \(e.message)")
        }
    }
}
