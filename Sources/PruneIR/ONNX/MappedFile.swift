import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file.
///
/// ``bytes(offset:length:)`` hands out zero-based `Data` that points into the mapping and keeps
/// it alive, so tensors can reference weights without copying them. The mapping is released when
/// the last such `Data` and the `MappedFile` are gone.
final class MappedFile: @unchecked Sendable {
    /// The file's size in bytes.
    let size: Int
    private let base: UnsafeMutableRawPointer?

    /// Maps `url` read-only.
    ///
    /// - Throws: a message (`String`) describing why the file cannot be opened or mapped.
    init(url: URL) throws {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw MappedFileError(message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw MappedFileError(message: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw MappedFileError(message: "not a regular file") }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw MappedFileError(message: String(cString: strerror(errno))) }
        base = p
        MappedFile.registry.withLock { $0[ObjectIdentifier(self)] = Weak(self) }
    }

    deinit {
        MappedFile.registry.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(self)) }
        if let base { munmap(base, size) }
    }

    private struct Weak { weak var file: MappedFile?; init(_ f: MappedFile) { file = f } }
    private static let registry = LockedDictionary<ObjectIdentifier, Weak>()

    /// Drops the resident pages of every live mapping (see ``MappedWeights``).
    static func releaseAll() {
        let files = registry.withLock { $0.values.compactMap(\.file) }
        for f in files {
            guard let base = f.base else { continue }
            _ = madvise(base, f.size, Int32(MADV_DONTNEED))
        }
    }

    /// The bytes `offset ..< offset + length` as zero-based `Data` sharing the mapping.
    ///
    /// - Precondition: the range lies inside the file (callers check against ``size``).
    func bytes(offset: Int, length: Int) -> Data {
        precondition(offset >= 0 && length >= 0 && offset <= size && length <= size - offset)
        guard let base, length > 0 else { return Data() }
        // The deallocator captures `self`, keeping the mapping alive as long as the Data lives.
        return Data(bytesNoCopy: base + offset, count: length, deallocator: .custom { [self] _, _ in _ = self })
    }

    /// The whole file.
    var all: Data { bytes(offset: 0, length: size) }
}

struct MappedFileError: Error {
    let message: String
}

/// A dictionary behind a lock (the registry of live mappings).
final class LockedDictionary<K: Hashable, V>: @unchecked Sendable {
    private var storage: [K: V] = [:]
    private let lock = NSLock()

    func withLock<R>(_ body: (inout [K: V]) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&storage)
    }
}

/// The weights of models loaded from files stay in their files: tensors point into read-only
/// private mappings, so a page is read from disk when first touched and counts in the process's
/// resident memory from then on, until the kernel needs the memory back.
///
/// A pass over a model larger than the memory it should use touches every weight: without help
/// the whole file would stay resident beside the pass's own allocations. ``releaseResidentPages()``
/// tells the kernel that none of the mapped pages is needed now (`madvise(MADV_DONTNEED)`): the
/// mappings stay valid, and a page touched again is read again from the file (the page cache
/// usually still holds it, so that costs a copy, not a disk read). The pass manager calls it after
/// every pass, `reconstruct` after every layer it walks past, `fold-masks` after every group it
/// slices, so resident memory is what the current step touches plus what the pass allocated.
public enum MappedWeights {
    /// Drops the resident pages of every mapped model file; nothing is lost (see the type's
    /// documentation).
    public static func releaseResidentPages() {
        MappedFile.releaseAll()
    }
}
