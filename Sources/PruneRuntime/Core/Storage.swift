import Foundation

/// Memory that holds an array's elements: allocated by the runtime, drawn from a ``MemoryPool``,
/// or borrowed from elsewhere (a weight inside a memory-mapped model file).
///
/// Storage is reference counted; when the last ``NDArray`` that refers to it goes away, pooled
/// memory returns to its pool and owned memory is freed. That is how the interpreter's liveness
/// plan turns into buffer reuse: dropping a value after its last use hands its memory back.
public final class Storage: @unchecked Sendable {
    /// Start of the memory (64-byte aligned unless borrowed).
    public let pointer: UnsafeMutableRawPointer
    /// Size in bytes.
    public let byteCount: Int
    private let kind: Kind

    private enum Kind {
        case owned
        case pooled(MemoryPool)
        case borrowed(AnyObject?)
    }

    /// Allocates `byteCount` bytes, 64-byte aligned, uninitialized.
    public init(allocating byteCount: Int) {
        self.pointer = Storage.alignedAllocate(byteCount)
        self.byteCount = byteCount
        self.kind = .owned
    }

    /// Wraps memory someone else owns; `owner` is kept alive as long as this storage.
    public init(borrowing pointer: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject?) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.kind = .borrowed(owner)
    }

    init(pooled pointer: UnsafeMutableRawPointer, byteCount: Int, pool: MemoryPool) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.kind = .pooled(pool)
    }

    deinit {
        switch kind {
        case .owned: free(pointer)
        case .pooled(let pool): pool.giveBack(pointer, byteCount: byteCount)
        case .borrowed: break
        }
    }

    static func alignedAllocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer?
        // posix_memalign with size 0 may return NULL; always ask for at least one cache line.
        let rc = posix_memalign(&p, 64, max(byteCount, 64))
        guard rc == 0, let p else { fatalError("out of memory allocating \(byteCount) bytes") }
        return p
    }
}

/// A pool of reusable buffers: the interpreter's arena.
///
/// Blocks are allocated on demand and kept after release; a request takes the smallest free block
/// that fits (and is at most twice its size). With the interpreter freeing each value after its
/// last use, the pool's ``reservedBytes`` is the arena a run needs; ``requestedBytes`` is what
/// the run would need with no reuse at all.
public final class MemoryPool: @unchecked Sendable {
    private var freeBlocks: [(pointer: UnsafeMutableRawPointer, size: Int)] = []
    private let lock = NSLock()
    /// Bytes held by the pool (in use or free): the arena size.
    public private(set) var reservedBytes = 0
    /// Sum of all requests since the last ``resetCounters()``: every intermediate tensor's size.
    public private(set) var requestedBytes = 0
    /// Largest number of bytes in use at once since the last ``resetCounters()``.
    public private(set) var peakInUseBytes = 0
    private var inUseBytes = 0

    /// Makes an empty pool.
    public init() {}

    deinit {
        for b in freeBlocks { free(b.pointer) }
    }

    /// Rounds sizes so that similar requests share blocks.
    private static func blockSize(_ n: Int) -> Int { max(64, (n + 255) & ~255) }

    /// Storage of at least `byteCount` bytes, uninitialized.
    public func take(_ byteCount: Int) -> Storage {
        let size = MemoryPool.blockSize(byteCount)
        lock.lock()
        defer { lock.unlock() }
        requestedBytes += byteCount
        var best = -1
        for (i, b) in freeBlocks.enumerated() where b.size >= size && b.size <= 2 * size {
            if best < 0 || b.size < freeBlocks[best].size { best = i }
        }
        let block: (pointer: UnsafeMutableRawPointer, size: Int)
        if best >= 0 {
            block = freeBlocks.remove(at: best)
        } else {
            block = (Storage.alignedAllocate(size), size)
            reservedBytes += size
        }
        inUseBytes += block.size
        peakInUseBytes = max(peakInUseBytes, inUseBytes)
        return Storage(pooled: block.pointer, byteCount: block.size, pool: self)
    }

    func giveBack(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        lock.lock()
        defer { lock.unlock() }
        inUseBytes -= byteCount
        freeBlocks.append((pointer, byteCount))
    }

    /// Starts counting ``requestedBytes`` and ``peakInUseBytes`` afresh (the arena is kept).
    public func resetCounters() {
        lock.lock()
        defer { lock.unlock() }
        requestedBytes = 0
        peakInUseBytes = inUseBytes
    }
}
