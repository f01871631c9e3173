import Foundation

/// Unit scores kept across runs of the same pipeline on the same model (`prunec sweep` runs one
/// pipeline at several amounts: the scores do not depend on the amount, so they are computed once).
///
/// A scoring pass asks ``scores(for:compute:)`` with a key naming everything the scores depend on
/// besides the model (its own scoring options, the groups); the driver gives each sweep pipeline
/// one cache and every run of it starts from the same original model.
public final class ScoreCache: @unchecked Sendable {
    private let lock = NSLock()
    private var store: [String: [[Double]]] = [:]
    /// Look-ups answered from the cache.
    public private(set) var hits = 0
    /// Look-ups that computed the scores.
    public private(set) var misses = 0

    /// An empty cache.
    public init() {}

    /// The scores stored under `key`, or those `compute` returns (then stored).
    public func scores(for key: String, compute: () throws -> [[Double]]) rethrows -> [[Double]] {
        lock.lock()
        if let s = store[key] {
            hits += 1
            lock.unlock()
            return s
        }
        lock.unlock()
        let s = try compute()
        lock.lock()
        store[key] = s
        misses += 1
        lock.unlock()
        return s
    }

    /// A key for scores of `groups` under `pass` with the scoring options `options` (their names and
    /// unit counts, so another model or another set of groups never shares scores).
    public static func key(pass: String, options: String, groups: [PruningGroup]) -> String {
        "\(pass)|\(options)|" + groups.map { "\($0.name):\($0.unitCount)" }.joined(separator: ",")
    }
}
