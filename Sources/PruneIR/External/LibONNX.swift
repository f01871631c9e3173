import CONNX
import Foundation

/// The system libonnx (Debian's libonnx-dev) as a second opinion: its model checker and its shape
/// inference, reached through the `CONNX` shim.
///
/// libonnx on Debian is onnx 1.12-era: it knows IR versions up to 8 and ai.onnx opsets up to 17.
/// Its checker rejects a newer IR version, but it silently accepts a newer opset (checking each node
/// against the newest schema it has), so its verdict on such a model means nothing. prunec therefore
/// asks it only about models within what it knows (``applicability(irVersion:opsets:)``) and
/// reports the others as skipped, with the reason.
///
/// ```swift
/// switch LibONNX.check(serializedModel: bytes, fullCheck: true) {
/// case .passed: break
/// case .failed(let message): print("libonnx rejects the model: \(message)")
/// case .skipped(let reason): print("libonnx not asked: \(reason)")
/// }
/// ```
///
/// Every call is synchronous, keeps no state and may run on any thread. This is the only file
/// that imports `CONNX`.
public enum LibONNX {
    /// IR version the system libonnx knows (the newest it accepts).
    public static var irVersion: Int {
        Int(prunec_onnx_ir_version())
    }

    /// The onnx release of the system libonnx, such as `"1.12.0"`.
    public static var version: String {
        String(cString: prunec_onnx_version_string())
    }

    /// The largest serialized model libonnx can parse: protobuf's 2 GiB - 1 bytes. Larger models
    /// keep their tensors as external data.
    public static let maxModelBytes = Int(PRUNEC_ONNX_MAX_MODEL_BYTES)

    /// The highest opset version libonnx knows for an operator set domain, or `nil` for a domain
    /// it does not know (a custom one).
    ///
    /// - Parameter domain: `""` or `"ai.onnx"` for the default domain, `"ai.onnx.ml"`, ...
    public static func maxOpset(domain: String) -> Int? {
        let known = prunec_onnx_max_opset(canonicalDomain(domain))
        return known < 0 ? nil : Int(known)
    }

    /// Whether a model with this IR version and these opset imports is within what libonnx knows;
    /// if not, the reason.
    ///
    /// A model is applicable when its IR version and its opset of every domain libonnx knows are
    /// no newer than libonnx's. Custom domains do not matter: libonnx checks no node of a domain
    /// it does not know.
    ///
    /// - Parameters:
    ///   - irVersion: the model's `ir_version`.
    ///   - opsets: the model's opset imports, domain to version; `""` and `"ai.onnx"` are the same.
    /// - Returns: `nil` when libonnx applies, otherwise why it is skipped.
    public static func applicability(irVersion: Int, opsets: [String: Int]) -> String? {
        var reasons: [String] = []
        if irVersion > self.irVersion {
            reasons.append("IR version \(irVersion) is newer than libonnx \(version) knows (\(self.irVersion))")
        }
        var merged: [String: Int] = [:]
        for (domain, opset) in opsets {
            let key = canonicalDomain(domain)
            merged[key] = max(merged[key] ?? opset, opset)
        }
        for (domain, opset) in merged.sorted(by: { $0.key < $1.key }) {
            if let known = maxOpset(domain: domain), opset > known {
                let name = domain.isEmpty ? "ai.onnx" : domain
                reasons.append("opset \(name) \(opset) is newer than libonnx \(version) knows (\(known))")
            }
        }
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }

    /// Runs libonnx's checker on a serialized model, first reading its IR version and opset imports
    /// from the bytes to decide whether libonnx applies.
    ///
    /// Reading the header walks only the top-level fields of the `ModelProto`; the graph is not
    /// decoded in Swift. See ``check(serializedModel:irVersion:opsets:fullCheck:)``; bytes that are
    /// not well-formed protobuf go to libonnx, whose parser rejects them.
    public static func check(serializedModel: Data, fullCheck: Bool) -> LibONNXResult {
        if let skipped = sizeSkipReason(serializedModel) {
            return .skipped(skipped)
        }
        guard let header = Header(serialized: serializedModel) else {
            // Not a well-formed ModelProto: libonnx's parser gives the verdict.
            return runChecker(serializedModel, fullCheck: fullCheck)
        }
        return check(
            serializedModel: serializedModel, irVersion: header.irVersion, opsets: header.opsets,
            fullCheck: fullCheck)
    }

    /// Runs libonnx's checker on a serialized model whose IR version and opset imports the caller
    /// already knows.
    ///
    /// - Parameters:
    ///   - serializedModel: a serialized `onnx.ModelProto`.
    ///   - irVersion: the model's `ir_version`.
    ///   - opsets: the model's opset imports (see ``applicability(irVersion:opsets:)``).
    ///   - fullCheck: also run shape inference with type checking in strict mode, as
    ///     `onnx.checker.check_model(model, full_check=True)` does.
    /// - Returns: ``LibONNXResult/skipped(_:)`` when the model is newer than libonnx or larger than
    ///   ``maxModelBytes``, or when libonnx could give no verdict (out of memory);
    ///   ``LibONNXResult/failed(_:)`` with libonnx's message when it rejects the model or cannot
    ///   parse the bytes; ``LibONNXResult/passed`` otherwise.
    ///
    /// Tensors stored as external data: libonnx checks that each `location` exists relative to the
    /// process's current directory, as bytes have no folder. Check such models with
    /// ``check(modelAt:irVersion:opsets:fullCheck:)``.
    public static func check(
        serializedModel: Data, irVersion: Int, opsets: [String: Int], fullCheck: Bool
    ) -> LibONNXResult {
        if let skipped = sizeSkipReason(serializedModel) {
            return .skipped(skipped)
        }
        if let reason = applicability(irVersion: irVersion, opsets: opsets) {
            return .skipped(reason)
        }
        return runChecker(serializedModel, fullCheck: fullCheck)
    }

    /// Runs libonnx's checker on a model file, reading it from disk, so that tensors stored as
    /// external data are looked up in the file's folder.
    ///
    /// libonnx 1.12 only checks that each external data `location` exists; it reads none of them.
    /// Parameters and results as for ``check(serializedModel:irVersion:opsets:fullCheck:)``; a file
    /// libonnx cannot open or parse is ``LibONNXResult/failed(_:)``.
    public static func check(
        modelAt url: URL, irVersion: Int, opsets: [String: Int], fullCheck: Bool
    ) -> LibONNXResult {
        if let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size]) as? Int,
            size > maxModelBytes
        {
            return .skipped(sizeSkipReason(byteCount: size))
        }
        if let reason = applicability(irVersion: irVersion, opsets: opsets) {
            return .skipped(reason)
        }
        var message: UnsafeMutablePointer<CChar>?
        let status = url.withUnsafeFileSystemRepresentation { path in
            prunec_onnx_check_model_file(path, fullCheck ? 1 : 0, &message)
        }
        return verdict(status: status, message: takeMessage(message))
    }

    /// Runs libonnx's shape inference on a serialized model and returns the serialized result, in
    /// which `value_info` (and untyped graph outputs) carry the inferred types and shapes.
    ///
    /// Uses libonnx's default options: no type checking, lenient mode (a node it cannot infer is
    /// left without a shape), no data propagation.
    ///
    /// - Returns: the inferred model, or ``LibONNXError/notApplicable(_:)`` when the model is newer
    ///   than libonnx or too large, ``LibONNXError/parseFailed(_:)``,
    ///   ``LibONNXError/inferenceFailed(_:)`` or ``LibONNXError/internalError(_:)``.
    public static func inferShapes(serializedModel: Data) -> Result<Data, LibONNXError> {
        if let skipped = sizeSkipReason(serializedModel) {
            return .failure(.notApplicable(skipped))
        }
        if let header = Header(serialized: serializedModel),
            let reason = applicability(irVersion: header.irVersion, opsets: header.opsets)
        {
            return .failure(.notApplicable(reason))
        }
        var out: UnsafeMutableRawPointer?
        var outLength = 0
        var message: UnsafeMutablePointer<CChar>?
        let status = serializedModel.withUnsafeBytes { bytes in
            prunec_onnx_infer_shapes(bytes.baseAddress, bytes.count, &out, &outLength, &message)
        }
        let text = takeMessage(message)
        switch status {
        case PRUNEC_ONNX_OK:
            guard let out else { return .failure(.internalError("libonnx returned no model")) }
            // The buffer is malloc'd by the shim and handed over: Data frees it, no copy is made.
            let inferred = Data(
                bytesNoCopy: out, count: outLength, deallocator: .custom { pointer, _ in prunec_onnx_free(pointer) })
            return .success(inferred)
        case PRUNEC_ONNX_FAILED:
            return .failure(.inferenceFailed(text))
        case PRUNEC_ONNX_PARSE_FAILED:
            return .failure(.parseFailed(text))
        default:
            return .failure(.internalError(text))
        }
    }

    // MARK: - Private

    private static func canonicalDomain(_ domain: String) -> String {
        domain == "ai.onnx" ? "" : domain
    }

    private static func sizeSkipReason(_ data: Data) -> String? {
        data.count > maxModelBytes ? sizeSkipReason(byteCount: data.count) : nil
    }

    private static func sizeSkipReason(byteCount: Int) -> String {
        "model is \(byteCount) bytes; libonnx parses at most \(maxModelBytes) (protobuf's 2 GB limit), "
            + "keep large tensors as external data"
    }

    private static func runChecker(_ data: Data, fullCheck: Bool) -> LibONNXResult {
        var message: UnsafeMutablePointer<CChar>?
        let status = data.withUnsafeBytes { bytes in
            prunec_onnx_check_model(bytes.baseAddress, bytes.count, fullCheck ? 1 : 0, &message)
        }
        return verdict(status: status, message: takeMessage(message))
    }

    private static func verdict(status: Int32, message text: String) -> LibONNXResult {
        switch status {
        case PRUNEC_ONNX_OK:
            return .passed
        case PRUNEC_ONNX_FAILED:
            return .failed(text)
        case PRUNEC_ONNX_PARSE_FAILED:
            return .failed("libonnx could not parse the model: \(text)")
        default:
            return .skipped("libonnx gave no verdict: \(text)")
        }
    }

    /// Copies a message the shim allocated and frees it.
    private static func takeMessage(_ message: UnsafeMutablePointer<CChar>?) -> String {
        guard let message else { return "" }
        defer { prunec_onnx_free(message) }
        return String(cString: message)
    }
}

extension LibONNX {
    /// The two top-level fields of a serialized `ModelProto` that decide applicability,
    /// `ir_version` (field 1) and `opset_import` (field 8), read from the protobuf wire format
    /// without decoding the graph or copying tensors.
    struct Header: Equatable {
        var irVersion: Int = 0
        var opsets: [String: Int] = [:]

        /// Returns `nil` when the bytes are not well-formed protobuf at the top level.
        init?(serialized data: Data) {
            let parsed: Header? = data.withUnsafeBytes { bytes in
                var reader = ProtobufWireReader(bytes: bytes)
                var header = Header(irVersion: 0, opsets: [:])
                while !reader.isAtEnd {
                    guard let (field, wireType) = reader.readTag() else { return nil }
                    switch (field, wireType) {
                    case (1, 0):
                        guard let value = reader.readVarint() else { return nil }
                        header.irVersion = Int(truncatingIfNeeded: Int64(bitPattern: value))
                    case (8, 2):
                        guard let body = reader.readLengthDelimited(),
                            let (domain, opset) = Self.readOpset(body)
                        else { return nil }
                        header.opsets[domain] = max(header.opsets[domain] ?? opset, opset)
                    default:
                        guard reader.skip(wireType: wireType) else { return nil }
                    }
                }
                return header
            }
            guard let parsed else { return nil }
            self = parsed
        }

        init(irVersion: Int, opsets: [String: Int]) {
            self.irVersion = irVersion
            self.opsets = opsets
        }

        /// Reads an `OperatorSetIdProto`: `domain` (field 1) and `version` (field 2).
        private static func readOpset(_ bytes: UnsafeRawBufferPointer) -> (String, Int)? {
            var reader = ProtobufWireReader(bytes: bytes)
            var domain = ""
            var version = 0
            while !reader.isAtEnd {
                guard let (field, wireType) = reader.readTag() else { return nil }
                switch (field, wireType) {
                case (1, 2):
                    guard let text = reader.readLengthDelimited() else { return nil }
                    domain = String(decoding: text, as: UTF8.self)
                case (2, 0):
                    guard let value = reader.readVarint() else { return nil }
                    version = Int(truncatingIfNeeded: Int64(bitPattern: value))
                default:
                    guard reader.skip(wireType: wireType) else { return nil }
                }
            }
            return (domain, version)
        }
    }
}

/// What libonnx's checker said about a model.
public enum LibONNXResult: Equatable, Sendable {
    /// libonnx accepts the model.
    case passed
    /// libonnx rejects the model (or cannot parse it); its message.
    case failed(String)
    /// libonnx was not asked, or gave no verdict; the reason (such as a model newer than libonnx).
    case skipped(String)
}

/// Why libonnx's shape inference gave no model.
public enum LibONNXError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The model is newer than libonnx or too large for it; the reason.
    case notApplicable(String)
    /// libprotobuf could not parse the bytes as a `ModelProto`.
    case parseFailed(String)
    /// libonnx's shape inference threw; its message.
    case inferenceFailed(String)
    /// libonnx gave no result for another reason (out of memory, output too large).
    case internalError(String)

    /// The reason, prefixed with what failed.
    public var description: String {
        switch self {
        case .notApplicable(let reason): "libonnx not applicable: \(reason)"
        case .parseFailed(let message): "libonnx could not parse the model: \(message)"
        case .inferenceFailed(let message): "libonnx shape inference failed: \(message)"
        case .internalError(let message): "libonnx internal error: \(message)"
        }
    }
}
