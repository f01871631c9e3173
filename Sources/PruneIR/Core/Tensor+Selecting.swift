import Foundation

extension Tensor {
    /// The tensor with only `indices` kept along `axis` (in the order given).
    ///
    /// - Throws: ``IRError/unsupported(_:)`` for string tensors and sub-byte element types, or
    ///   when an index is out of range.
    public func selecting(_ indices: [Int], along axis: Int) throws -> Tensor {
        guard dtype != .string, dtype.bitWidth % 8 == 0 else {
            throw IRError.unsupported("slicing a \(dtype) tensor '\(name)'")
        }
        guard axis >= 0, axis < shape.count else { throw IRError.unsupported("slicing axis \(axis) of '\(name)' \(shape)") }
        let n = shape[axis]
        guard indices.allSatisfy({ $0 >= 0 && $0 < n }) else {
            throw IRError.unsupported("an index out of 0..<\(n) when slicing '\(name)'")
        }
        let outer = Shape.product(Array(shape[..<axis])) ?? 0
        let innerBytes = (Shape.product(Array(shape[(axis + 1)...])) ?? 0) * (dtype.bitWidth / 8)
        let src = rawBytes
        var out = Data(count: outer * indices.count * innerBytes)
        src.withUnsafeBytes { (s: UnsafeRawBufferPointer) in
            out.withUnsafeMutableBytes { (d: UnsafeMutableRawBufferPointer) in
                guard innerBytes > 0, let sb = s.baseAddress, let db = d.baseAddress else { return }
                var o = 0
                for i in 0 ..< outer {
                    let row = sb + i * n * innerBytes
                    for k in indices {
                        db.advanced(by: o).copyMemory(from: row + k * innerBytes, byteCount: innerBytes)
                        o += innerBytes
                    }
                }
            }
        }
        var newShape = shape
        newShape[axis] = indices.count
        return Tensor(name: name, dtype: dtype, shape: newShape, bytes: out)
    }
}
