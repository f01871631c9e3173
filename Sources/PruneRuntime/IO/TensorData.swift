import Foundation
import PruneIR

/// Tensor data files (`.npz`, `.npy`, ONNX `test_data_set_*` folders) and how their keys bind to
/// a model's inputs.
///
/// Binding contract:
/// - A key names a graph input, optionally prefixed `in.` (`input` or `in.input`).
/// - Keys that name no input (`out.logits`, `set3.input`, ...) are ignored, with a note on stderr.
/// - `set: N` (N ≥ 1) uses the keys prefixed `setN.` (with the prefix removed) instead of the plain
///   ones; the other keys are then skipped without a note (the calibration files in
///   examples/models hold plain keys plus `set1.` … `set7.` copies). Set 0 means the plain keys.
/// - A missing input is an error naming the input and the file; a wrong element type, rank or
///   fixed dimension is caught by ``Interpreter/run(_:)``, and ``run(_:on:file:)`` adds the file.
public enum TensorData {
    /// One named array of a data file.
    public typealias Entry = (name: String, array: NDArray)

    /// Reads a data file.
    ///
    /// - `.npz`: every member, keyed by its name without `.npy`.
    /// - `.npy`: one array keyed by the file's stem (`x.npy` → `x`).
    /// - `.pb`: one ONNX TensorProto, keyed by its name (or the file's stem when unnamed).
    /// - a folder (an ONNX `test_data_set_N`): its `input_K.pb` files in order of K, keyed by the
    ///   TensorProto's name when it has one that is in `inputNames` (or `inputNames` is empty), else
    ///   by position: `input_K.pb` → `inputNames[K]`.
    ///
    /// - Parameters:
    ///   - url: The file or folder.
    ///   - displayName: How errors name it (default: the path as given).
    ///   - inputNames: The model's inputs that need data, in graph order (for folders).
    public static func load(_ url: URL, displayName: String? = nil, inputNames: [String] = []) throws -> [Entry] {
        let file = displayName ?? url.relativePath
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TensorDataError(file: file, reason: "no such file")
        }
        if isDirectory.boolValue { return try loadTestDataSet(url, file: file, inputNames: inputNames) }
        switch url.pathExtension.lowercased() {
        case "npz": return try NPZ.read(contentsOf: url, displayName: file)
        case "npy": return [(url.deletingPathExtension().lastPathComponent, try NPY.read(contentsOf: url, displayName: file))]
        case "pb":
            let t = try loadTensor(url, file: file)
            return [(t.name.isEmpty ? url.deletingPathExtension().lastPathComponent : t.name, t.array)]
        default:
            throw TensorDataError(file: file, reason: "unknown data file type (expected .npz, .npy, .pb or a test_data_set folder)")
        }
    }

    private static func loadTestDataSet(_ url: URL, file: String, inputNames: [String]) throws -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        var indexed: [(Int, String)] = []
        for n in names where n.hasPrefix("input_") && n.hasSuffix(".pb") {
            guard let k = Int(n.dropFirst(6).dropLast(3)) else { continue }
            indexed.append((k, n))
        }
        indexed.sort { $0.0 < $1.0 }
        guard !indexed.isEmpty else { throw TensorDataError(file: file, reason: "folder holds no input_N.pb files") }
        let known = Set(inputNames)
        var out: [Entry] = []
        for (position, (k, n)) in indexed.enumerated() {
            let t = try loadTensor(url.appendingPathComponent(n), file: file + "/" + n)
            let name: String
            if !t.name.isEmpty && (known.isEmpty || known.contains(t.name)) {
                name = t.name
            } else if position < inputNames.count {
                name = inputNames[position]
            } else {
                name = t.name.isEmpty ? "input_\(k)" : t.name
            }
            out.append((name, t.array))
        }
        return out
    }

    private static func loadTensor(_ url: URL, file: String) throws -> (name: String, array: NDArray) {
        do {
            let t = try ModelImporter.loadTensor(contentsOf: url, displayName: file)
            return (t.name, try NDArray(tensor: t))
        } catch let e as TensorDataError {
            throw e
        } catch {
            // Import errors already name the file; keep their text and make them data errors.
            let text = "\(error)"
            let reason = text.hasPrefix(file + ": ") ? String(text.dropFirst(file.count + 2)) : text
            throw TensorDataError(file: file, reason: reason)
        }
    }

    /// Binds data entries to `graph`'s inputs (see the type's binding contract).
    ///
    /// - Parameters:
    ///   - entries: What ``load(_:displayName:inputNames:)`` returned.
    ///   - graph: The model's main graph.
    ///   - set: A calibration set number (≥ 1) to use the `setN.` keys; `nil` or 0 for plain keys.
    ///   - file: How errors and notes name the data file.
    ///   - note: Where the note about ignored keys goes (default: stderr).
    /// - Returns: Arrays keyed by graph input name.
    public static func bind(_ entries: [Entry], to graph: Graph, set: Int? = nil, file: String,
                            note: (String) -> Void = TensorData.noteOnStderr) throws -> [String: NDArray] {
        let inputs = Set(graph.inputs.map(\.name))
        var chosen = entries
        if let set, set > 0 {
            let prefix = "set\(set)."
            chosen = entries.filter { $0.name.hasPrefix(prefix) }.map { (String($0.name.dropFirst(prefix.count)), $0.array) }
            if chosen.isEmpty {
                let sets = Swift.Set(entries.compactMap(setNumber)).sorted()
                throw TensorDataError(file: file, reason: "no keys prefixed '\(prefix)' (calibration sets in the file: \(sets.isEmpty ? "none" : sets.map(String.init).joined(separator: ", ")))")
            }
        }
        var bound: [String: NDArray] = [:]
        var source: [String: String] = [:]
        var ignored: [String] = []
        for (key, array) in chosen {
            let name = inputs.contains(key) ? key : (key.hasPrefix("in.") ? String(key.dropFirst(3)) : key)
            guard inputs.contains(name) else {
                ignored.append(key)
                continue
            }
            if let other = source[name] {
                throw TensorDataError(file: file, reason: "input '\(name)' is given twice, as '\(other)' and as '\(key)'")
            }
            source[name] = key
            bound[name] = array
        }
        if !ignored.isEmpty {
            let shown = ignored.prefix(6).joined(separator: ", ") + (ignored.count > 6 ? ", ... (\(ignored.count - 6) more)" : "")
            note("\(file): ignoring \(ignored.count) key\(ignored.count == 1 ? " that names" : "s that name") no input of the model: \(shown)")
        }
        for v in graph.inputs where v.initializer == nil && bound[v.name] == nil {
            let keys = chosen.map(\.name)
            let listed = keys.prefix(10).joined(separator: ", ") + (keys.count > 10 ? ", ..." : "")
            throw TensorDataError(file: file, reason: "missing input '\(v.name)'\(v.type.map { " (\($0))" } ?? ""): no key '\(v.name)' or 'in.\(v.name)'\(set.map { $0 > 0 ? " in set \($0)" : "" } ?? "") (keys: \(keys.isEmpty ? "none" : listed))")
        }
        return bound
    }

    /// Runs `interpreter` on `inputs`; an input that does not match the model (element type,
    /// rank, dimension) becomes an error naming the data `file` as well as the input.
    public static func run(_ interpreter: Interpreter, on inputs: [String: NDArray], file: String) throws -> [String: NDArray] {
        do {
            return try interpreter.run(inputs)
        } catch RuntimeError.input(let message) {
            throw TensorDataError(file: file, reason: message)
        }
    }

    /// Writes `note: <message>` to stderr.
    public static func noteOnStderr(_ message: String) {
        FileHandle.standardError.write(Data("note: \(message)\n".utf8))
    }

    private static func setNumber(_ e: Entry) -> Int? {
        guard e.name.hasPrefix("set"), let dot = e.name.firstIndex(of: ".") else { return nil }
        return Int(e.name[e.name.index(e.name.startIndex, offsetBy: 3)..<dot])
    }
}
