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
    }

    deinit {
        if let base { munmap(base, size) }
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
