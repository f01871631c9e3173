import Foundation
import PruneIR
import ZIPFoundation

/// NumPy's `.npz` format: a zip archive of `.npy` members, one per array, keyed by the member
/// name without `.npy` (what `np.savez` writes and `np.load(...).files` lists).
///
/// Reads stored and deflated members (`np.savez`, `np.savez_compressed`); writes stored members.
public enum NPZ {
    /// Reads every array in `url`, in archive order.
    public static func read(contentsOf url: URL, displayName: String? = nil) throws -> [(name: String, array: NDArray)] {
        let file = displayName ?? url.relativePath
        guard FileManager.default.fileExists(atPath: url.path) else { throw TensorDataError(file: file, reason: "no such file") }
        let archive: Archive
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            throw TensorDataError(file: file, reason: "not a valid .npz (zip) archive: \(describe(error))")
        }
        var out: [(name: String, array: NDArray)] = []
        var seen = Set<String>()
        for entry in archive {
            let member = entry.path
            guard entry.type == .file else {
                if entry.type == .directory { continue }
                throw TensorDataError(file: file, member: member, reason: "is not a regular file")
            }
            guard member.hasSuffix(".npy") else {
                throw TensorDataError(file: file, member: member, reason: "is not an .npy array (every member of an .npz must be)")
            }
            let key = String(member.dropLast(4))
            guard seen.insert(key).inserted else {
                throw TensorDataError(file: file, member: member, reason: "appears twice in the archive")
            }
            var decoder = StreamDecoder(file: file, member: member, memberSize: Int(clamping: entry.uncompressedSize))
            let crc: CRC32
            do {
                crc = try archive.extract(entry, bufferSize: 1 << 20, skipCRC32: false) { chunk in try decoder.consume(chunk) }
            } catch let e as TensorDataError {
                throw e
            } catch {
                throw TensorDataError(file: file, member: member, reason: "cannot extract: \(describe(error))")
            }
            guard crc == entry.checksum else {
                throw TensorDataError(file: file, member: member, reason: "CRC-32 mismatch (the archive is corrupt)")
            }
            out.append((key, try decoder.finish()))
        }
        return out
    }

    /// Writes `arrays` as an `.npz` of stored (uncompressed) members `<name>.npy`, atomically: the
    /// archive is built in a temporary file next to `url` and renamed over it when complete.
    public static func write(_ arrays: [(name: String, array: NDArray)], to url: URL, displayName: String? = nil) throws {
        let file = displayName ?? url.relativePath
        var names = Set<String>()
        for (name, _) in arrays where !names.insert(name).inserted {
            throw TensorDataError(file: file, reason: "two arrays are named '\(name)'")
        }
        let temp = AtomicFile.temporaryURL(near: url)
        do {
            // The archive closes its file when released, before the rename below.
            let archive: Archive
            do {
                archive = try Archive(url: temp, accessMode: .create)
            } catch {
                throw TensorDataError(file: file, reason: "cannot write: \(describe(error))")
            }
            for (name, array) in arrays {
                let member = name + ".npy"
                let head = try NPY.header(dtype: array.dtype, shape: array.shape, file: file, member: member)
                let body = Data(bytesNoCopy: array.rawPointer, count: array.byteCount, deallocator: .none)
                let total = head.count + body.count
                do {
                    try archive.addEntry(with: member, type: .file, uncompressedSize: Int64(total),
                                         modificationDate: fixedDate, compressionMethod: .none, bufferSize: 1 << 20) { position, size in
                        let start = Int(position)
                        let end = min(total, start + size)
                        if end <= head.count { return head.subdata(in: start..<end) }
                        if start >= head.count { return body.subdata(in: (start - head.count)..<(end - head.count)) }
                        return head.subdata(in: start..<head.count) + body.subdata(in: 0..<(end - head.count))
                    }
                } catch {
                    throw TensorDataError(file: file, member: member, reason: "cannot write: \(describe(error))")
                }
            }
        } catch {
            AtomicFile.discard(temp)
            throw error
        }
        do {
            try AtomicFile.commit(temp, to: url, displayName: file)
        } catch let e as AtomicFileError {
            throw TensorDataError(file: e.file, reason: "cannot write: \(e.reason)")
        }
    }

    /// NumPy stamps members 1980-01-01 00:00; a fixed date also makes the output reproducible.
    private static let fixedDate: Date = {
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute) = (1980, 1, 1, 0, 0)
        return Calendar.current.date(from: c) ?? Date(timeIntervalSince1970: 315_532_800)
    }()

    private static func describe(_ error: Error) -> String {
        if let e = error as? Archive.ArchiveError { return "\(e)" }
        return "\(error)"
    }
}

/// Decodes an `.npy` image that arrives in chunks, copying the elements straight into the array
/// (a member is never held twice in memory).
struct StreamDecoder {
    let file: String
    let member: String
    private var head = Data()
    private var array: NDArray?
    private var written = 0
    private var need = 0
    /// The member's uncompressed size as the archive declares it: the header's shape must account
    /// for exactly these bytes before the array is allocated.
    let memberSize: Int

    init(file: String, member: String, memberSize: Int) {
        self.file = file
        self.member = member
        self.memberSize = memberSize
    }

    mutating func consume(_ chunk: Data) throws {
        var chunk = chunk[...]
        if array == nil {
            head += chunk
            chunk = Data()[...]
            guard let h = try headerIfComplete() else { return }
            // Checked before allocating: a 200-byte member must not ask for terabytes.
            let declared = h.byteCount
            guard declared == memberSize - h.dataOffset else {
                throw TensorDataError(file: file, member: member,
                                      reason: "header says shape \(h.shape) of \(h.dtype) (\(declared) bytes of data), the member holds \(max(0, memberSize - h.dataOffset))")
            }
            guard UInt64(declared) <= ProcessInfo.processInfo.physicalMemory else {
                throw TensorDataError(file: file, member: member,
                                      reason: "shape \(h.shape) needs \(declared) bytes, more than this machine's memory")
            }
            let a = NDArray(uninitialized: h.dtype, shape: h.shape)
            array = a
            need = a.byteCount
            chunk = head[(head.startIndex + h.dataOffset)...]
            head = Data()
        }
        guard let a = array, !chunk.isEmpty else { return }
        guard written + chunk.count <= need else {
            throw TensorDataError(file: file, member: member, reason: "\(written + chunk.count - need) unexpected bytes after the data of shape \(a.shape)")
        }
        chunk.withUnsafeBytes { raw in
            (a.rawPointer + written).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
        }
        written += chunk.count
    }

    /// The header once all its bytes have arrived.
    private func headerIfComplete() throws -> NPY.Header? {
        guard head.count >= 10 else { return nil }
        let base = head.startIndex
        let prefix: Int
        let length: Int
        switch head[base + 6] {
        case 2, 3:
            guard head.count >= 12 else { return nil }
            prefix = 12
            length = (0..<4).reduce(0) { $0 | Int(head[base + 8 + $1]) << (8 * $1) }
        default:
            // Version 1, or a bad magic/version that parseHeader reports.
            prefix = 10
            length = Int(head[base + 8]) | Int(head[base + 9]) << 8
        }
        guard head.count >= prefix + length || !head.prefix(6).elementsEqual(NPY.magic) else { return nil }
        return try NPY.parseHeader(head, file: file, member: member)
    }

    /// The decoded array; throws if the member ended early.
    func finish() throws -> NDArray {
        guard let a = array else {
            if head.count >= 6, !head.prefix(6).elementsEqual(NPY.magic) {
                throw TensorDataError(file: file, member: member, reason: "not an .npy file (no \\x93NUMPY magic)")
            }
            throw TensorDataError(file: file, member: member, reason: "truncated header (\(head.count) bytes)")
        }
        guard written == need else {
            throw TensorDataError(file: file, member: member,
                                  reason: "truncated: shape \(a.shape) of \(a.dtype) needs \(need) bytes of data, the member has \(written)")
        }
        if a.dtype == .bool { NPY.normalizeBools(a) }
        return a
    }
}
