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
/// ```swift
/// let sets = try CalibrationData.load(URL(fileURLWithPath: "bert.calib.npz"), for: model)
/// // sets.count == 8; sets[3]["input_ids"] is set3.input_ids
/// ```
public enum CalibrationData {
    /// Loads every input set of the data at `url` for `model`'s inputs.
    ///
    /// - Parameters:
    ///   - url: An `.npz`/`.npy`/`.pb` file, a `test_data_set_N` folder, or a folder of them.
    ///   - model: The model whose inputs (those without an initializer) the sets must provide.
    ///   - note: Where notes about ignored keys go (default: stderr).
    /// - Returns: The sets, primary first, each keyed by input name.
    /// - Throws: `TensorDataError` naming the file (and key) for unreadable data, a missing
    ///   input, or an array whose element type, rank or fixed dimension the input does not accept.
    public static func load(_ url: URL, for model: Model,
                            note: (String) -> Void = TensorData.noteOnStderr) throws -> [[String: NDArray]] {
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
        var sets: [[String: NDArray]] = []
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

    /// Binds one set and checks each array against its input, naming the key on a mismatch.
    private static func bindChecked(_ entries: [TensorData.Entry], model: Model, set: Int?, file: String,
                                    note: (String) -> Void) throws -> [String: NDArray] {
        let bound = try TensorData.bind(entries, to: model.graph, set: set, file: file, note: note)
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
            for (i, d) in shape.dims.enumerated() {
                if case .known(let n) = d, n != a.shape[i] {
                    throw fail("shape \(dims(a.shape)), but input '\(v.name)' is \(shape) (dimension \(i) must be \(n))")
                }
            }
        }
        return bound
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
