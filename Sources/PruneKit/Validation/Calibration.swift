import Foundation
import PruneIR
import PruneRuntime

/// Calibration data: every input set a data file holds, bound to a model's inputs and checked
/// against them before anything runs.
///
/// Sources:
/// - an `.npz` (or `.npy`, `.pb`): the primary set, whose keys are the input names (optionally
///   prefixed `in.`), then the sets `set1.<name>`, `set2.<name>`, ... in order of their number.
///   The primary set may be left out when numbered sets are present. Keys that name no input
///   (`out.*`, ...) are ignored with a note;
/// - a folder of ONNX `test_data_set_*` folders: one set per folder, in order of their number;
/// - a single `test_data_set_N` folder (holding `input_K.pb` files): one set.
///
/// Every array is checked against the model's input: element type, rank and fixed dimensions. A
/// mismatch or a missing input is a `TensorDataError` naming the file and the key.
///
/// **The rows of a batch are samples.** A set whose arrays all have the same leading size N > 1,
/// where the model declares that axis of every input symbolic (the same symbol), unknown or 1, is
/// split into N sets of batch 1, rows in order, in its place among the sets: one `[8, 64]`
/// `input_ids` is 8 samples, as are 8 sets of `[1, 64]`. Everything that uses calibration data
/// (held-out splits, perplexity, statistics, validation drift) thus counts samples, however the
/// file groups them. A set is left as it is when the model fixes the batch at N (it needs the
/// whole batch), or when its arrays' leading sizes differ (an input without a batch axis).
/// ``loadSamples(_:for:note:)`` also tells which set of the file each sample comes from.
///
/// ```swift
/// let sets = try CalibrationData.load(URL(fileURLWithPath: "bert.calib.npz"), for: model)
/// // sets.count == 8; sets[3]["input_ids"] is set3.input_ids
/// ```
public enum CalibrationData {
    /// Calibration samples and how the data file grouped them.
    public struct Samples {
        /// The samples, in file order (the rows of a split batch in row order), keyed by input name.
        public var samples: [[String: NDArray]]
        /// For each sample, the index of the file's set (primary set first) it is, or is a row of.
        public var fileSet: [Int]
        /// Number of sets in the file.
        public var fileSets: Int
    }

    /// Loads every calibration sample of the data at `url` for `model`'s inputs (see
    /// ``loadSamples(_:for:note:)``).
    ///
    /// - Returns: The samples, primary set first, each keyed by input name.
    public static func load(_ url: URL, for model: Model,
                            note: (String) -> Void = TensorData.noteOnStderr) throws -> [[String: NDArray]] {
        try loadSamples(url, for: model, note: note).samples
    }

    /// Loads every input set of the data at `url` for `model`'s inputs, and splits batches into
    /// their rows (see the type's discussion). A note says when a batch was split.
    ///
    /// - Parameters:
    ///   - url: An `.npz`/`.npy`/`.pb` file, a `test_data_set_N` folder, or a folder of them.
    ///   - model: The model whose inputs (those without an initializer) the sets must provide.
    ///   - note: Where notes about ignored keys and split batches go (default: stderr).
    /// - Returns: The samples and the file set each comes from.
    /// - Throws: `TensorDataError` naming the file (and key) for unreadable data, a missing
    ///   input, or an array whose element type, rank or fixed dimension the input does not accept.
    public static func loadSamples(_ url: URL, for model: Model,
                                   note: (String) -> Void = TensorData.noteOnStderr) throws -> Samples {
        let sets = try loadSets(url, for: model, note: note)
        var out = Samples(samples: [], fileSet: [], fileSets: sets.count)
        var split: [Int] = []
        for (k, (set, rows)) in sets.enumerated() {
            guard let rows else {
                out.samples.append(set)
                out.fileSet.append(k)
                continue
            }
            split.append(rows)
            for r in 0..<rows {
                out.samples.append(set.mapValues { row(r, of: rows, in: $0) })
                out.fileSet.append(k)
            }
        }
        if !split.isEmpty {
            let sizes = Set(split).count == 1 ? "\(split[0])" : split.map(String.init).joined(separator: ", ")
            note("\(url.relativePath): \(split.count) set\(split.count == 1 ? "" : "s") of \(sizes) rows → \(out.samples.count) samples (each row of a batch is one calibration sample)")
        }
        return out
    }

    /// Every set of the file, checked, with its number of rows when it is a batch to split.
    private static func loadSets(_ url: URL, for model: Model,
                                 note: (String) -> Void) throws -> [([String: NDArray], Int?)] {
        let file = url.relativePath
        let needed = model.graph.inputs.filter { $0.initializer == nil }.map(\.name)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            let folders = testDataSets(in: url)
            if !folders.isEmpty {
                return try folders.map { folder in
                    let name = file + "/" + folder.lastPathComponent
                    let entries = try TensorData.load(folder, displayName: name, inputNames: needed)
                    return try bindChecked(entries, model: model, set: nil, file: name, note: note)
                }
            }
        }
        let entries = try TensorData.load(url, displayName: file, inputNames: needed)
        let numbered = Set(entries.compactMap { setNumber($0.name) }).sorted()
        let plain = entries.filter { setNumber($0.name) == nil }
        var sets: [([String: NDArray], Int?)] = []
        // The primary set is optional only when numbered sets exist and no plain key names an input.
        let inputs = Set(model.graph.inputs.map(\.name))
        let plainNamesInput = plain.contains { e in
            inputs.contains(e.name) || (e.name.hasPrefix("in.") && inputs.contains(String(e.name.dropFirst(3))))
        }
        if numbered.isEmpty || plainNamesInput {
            sets.append(try bindChecked(plain, model: model, set: nil, file: file, note: note))
        } else if !plain.isEmpty {
            note("\(file): ignoring \(plain.count) key\(plain.count == 1 ? "" : "s") outside the numbered sets: \(plain.prefix(6).map(\.name).joined(separator: ", "))")
        }
        for n in numbered {
            sets.append(try bindChecked(entries, model: model, set: n, file: file, note: note))
        }
        return sets
    }

    /// Binds one set and checks each array against its input, naming the key on a mismatch; with
    /// the set's number of rows when it is a batch of samples (then the leading axis is not checked).
    private static func bindChecked(_ entries: [TensorData.Entry], model: Model, set: Int?, file: String,
                                    note: (String) -> Void) throws -> ([String: NDArray], Int?) {
        let bound = try TensorData.bind(entries, to: model.graph, set: set, file: file, note: note)
        let rows = batchRows(bound, model: model)
        let keys = Set(entries.map(\.name))
        let prefix = set.map { "set\($0)." } ?? ""
        for v in model.graph.inputs {
            guard let a = bound[v.name], case .tensor(let dtype, let shape)? = v.type else { continue }
            let key = keys.contains(prefix + v.name) ? prefix + v.name : prefix + "in." + v.name
            func fail(_ reason: String) -> TensorDataError {
                TensorDataError(file: file, reason: "key '\(key)': \(reason)")
            }
            if a.dtype != dtype {
                throw fail("element type \(a.dtype), but input '\(v.name)' is \(dtype)")
            }
            guard let shape else { continue }
            if a.rank != shape.rank {
                throw fail("shape \(dims(a.shape)) has rank \(a.rank), but input '\(v.name)' has rank \(shape.rank): \(shape)")
            }
            for (i, d) in shape.dims.enumerated() where i > 0 || rows == nil {
                if case .known(let n) = d, n != a.shape[i] {
                    throw fail("shape \(dims(a.shape)), but input '\(v.name)' is \(shape) (dimension \(i) must be \(n))")
                }
            }
        }
        return (bound, rows)
    }

    /// N when every array of `set` is a batch of N > 1 rows of the model's input: all have the same
    /// leading size N, and the input declares that axis unknown, 1, or symbolic with one symbol
    /// shared by all inputs; else `nil` (a fixed batch of N, an input without a batch axis, a
    /// leading symbol named like a sequence axis (`seq_len`, `time`, ...), a scalar, an input
    /// without a declared shape, an element type narrower than a byte).
    static func batchRows(_ set: [String: NDArray], model: Model) -> Int? {
        var rows: Int?
        var symbol: String?
        for v in model.graph.inputs {
            guard let a = set[v.name] else { continue }
            guard a.rank >= 1, a.dtype == .bool || a.dtype.bitWidth % 8 == 0,
                  case .tensor(_, let shape?)? = v.type, shape.rank == a.rank else { return nil }
            switch shape.dims[0] {
            case .known(let n) where n != 1: return nil
            case .symbol(let s):
                if let symbol, symbol != s { return nil }
                // A time-major input ([seq, batch, ...]) leads with its sequence, not a batch.
                let lower = s.lowercased()
                if ["seq", "len", "time", "step", "token"].contains(where: { lower.contains($0) }) { return nil }
                symbol = s
            default: break
            }
            if let rows, rows != a.shape[0] { return nil }
            rows = a.shape[0]
        }
        guard let rows, rows > 1 else { return nil }
        return rows
    }

    /// Row `r` of the `rows` rows of `a`, as a batch of one (a copy).
    static func row(_ r: Int, of rows: Int, in a: NDArray) -> NDArray {
        let per = a.count / rows
        let bytes = NDArray.byteCount(a.dtype, per)
        let out = NDArray(uninitialized: a.dtype, shape: [1] + a.shape.dropFirst())
        if bytes > 0 { out.rawPointer.copyMemory(from: a.rawPointer + r * bytes, byteCount: bytes) }
        return out
    }

    /// The `test_data_set_N` subfolders of `url`, in order of N.
    private static func testDataSets(in url: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        let numbered = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("test_data_set_"), let n = Int(name.dropFirst("test_data_set_".count)) else { return nil }
            var isDirectory: ObjCBool = false
            let path = url.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
            return (n, name)
        }
        return numbered.sorted { $0.0 < $1.0 }.map { url.appendingPathComponent($0.1) }
    }

    /// N for a key `setN.<name>` (N ≥ 1), else `nil`.
    private static func setNumber(_ key: String) -> Int? {
        guard key.hasPrefix("set"), let dot = key.firstIndex(of: ".") else { return nil }
        guard let n = Int(key[key.index(key.startIndex, offsetBy: 3)..<dot]), n >= 1 else { return nil }
        return n
    }

    private static func dims(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ",") + "]" }
}

extension CalibrationData {
    /// How many of `samples` calibration samples a pass holds out when `asked` are: `asked`, or
    /// fewer so that at least one is left to score on.
    ///
    /// A held-out metric computed from calibration data needs a held-out sample: with fewer than
    /// two samples (and `asked` > 0) the split would be empty, and the metric would silently come
    /// from other inputs; that is an error, never a number.
    ///
    /// - Parameters:
    ///   - asked: The pass's option value (`holdout=`).
    ///   - samples: Calibration samples given (the rows of a batch count one each).
    ///   - pass: The pass's name, for the message.
    ///   - option: The option's spelling, for the message.
    ///   - value: The option's value as the user wrote it (default: `asked`).
    /// - Returns: The number to hold out (0 when `asked` is 0).
    /// - Throws: ``PruningError/invalid(_:)`` naming the option and the number of samples.
    public static func heldOutCount(_ asked: Int, of samples: Int, pass: String, option: String = "holdout",
                                    value: String? = nil) throws -> Int {
        guard asked > 0 else { return 0 }
        guard samples >= 2 else {
            throw PruningError.invalid("\(pass): \(option)=\(value ?? String(asked)) holds out calibration samples for the reported metric, but the calibration data has \(samples) sample\(samples == 1 ? "" : "s") (one must be left to score on): give more samples (each row of a batch counts as one) or set \(option)=0")
        }
        return min(asked, samples - 1)
    }
}
