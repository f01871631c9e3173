/// Errors raised by IR mutation, attribute access and verification.
///
/// Messages name IR things (nodes, values, attributes), never Swift types.
public enum IRError: Error, Equatable, CustomStringConvertible {
    /// An attribute exists but has another kind than the one asked for.
    case attributeKind(node: String, name: String, expected: String, actual: String)
    /// A value that something still reads was asked to be removed.
    case valueInUse(String, uses: [String])
    /// A node that is not part of the graph was used as an anchor or removed.
    case notInGraph(String)
    /// A tensor has no conversion to the requested element type.
    case unsupportedConversion(tensor: String, from: DType, to: DType)
    /// The verifier found problems; each string is one finding.
    case verificationFailed([String])
    /// An operation the IR does not support on this data (named in the message).
    case unsupported(String)

    public var description: String {
        switch self {
        case .attributeKind(let node, let name, let expected, let actual):
            return "node \(node): attribute '\(name)' is \(actual), expected \(expected)"
        case .valueInUse(let v, let uses):
            return "value '\(v)' is still used by \(uses.prefix(3).joined(separator: ", "))\(uses.count > 3 ? " and \(uses.count - 3) more" : "")"
        case .notInGraph(let n):
            return "node \(n) is not in this graph"
        case .unsupportedConversion(let t, let from, let to):
            return "tensor '\(t)': cannot convert \(from) elements to \(to)"
        case .unsupported(let what):
            return "unsupported: \(what)"
        case .verificationFailed(let findings):
            let shown = findings.prefix(5).joined(separator: "; ")
            return "invalid graph: \(shown)\(findings.count > 5 ? " (and \(findings.count - 5) more)" : "")"
        }
    }
}

/// Errors raised while reading an ONNX model. Each names the file and, where it applies, the node,
/// value or tensor at fault.
public enum ONNXImportError: Error, Equatable, CustomStringConvertible {
    /// The file does not exist.
    case fileNotFound(file: String)
    /// The file exists but could not be read or mapped.
    case unreadable(file: String, reason: String)
    /// The bytes are not a protobuf `ModelProto` (random bytes, a truncated file, ...).
    case malformed(file: String, reason: String)
    /// The model is structurally invalid (no graph, no opset import, ...).
    case invalidModel(file: String, reason: String)
    /// A tensor or value uses an element type number this build does not know.
    case unknownElementType(file: String, what: String, code: Int32)
    /// A tensor's data does not match its type and shape.
    case tensorData(file: String, tensor: String, reason: String)
    /// A tensor's external data cannot be used (missing, short, or outside the model's folder).
    case externalData(file: String, tensor: String, reason: String)
    /// A node or graph output reads a name nothing defines.
    case danglingValue(file: String, reader: String, value: String)
    /// Two definitions (node outputs, inputs, initializers) share a name.
    case duplicateDefinition(file: String, value: String, first: String, second: String)
    /// The nodes form a cycle.
    case cycle(file: String, nodes: [String])
    /// Subgraphs nest deeper than the importer allows.
    case nestingTooDeep(file: String, node: String, limit: Int)

    /// The file the error is about.
    public var file: String {
        switch self {
        case .fileNotFound(let f), .unreadable(let f, _), .malformed(let f, _), .invalidModel(let f, _),
            .unknownElementType(let f, _, _), .tensorData(let f, _, _), .externalData(let f, _, _),
            .danglingValue(let f, _, _), .duplicateDefinition(let f, _, _, _), .cycle(let f, _),
            .nestingTooDeep(let f, _, _):
            return f
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let f):
            return "\(f): no such file"
        case .unreadable(let f, let r):
            return "\(f): cannot read: \(r)"
        case .malformed(let f, let r):
            return "\(f): not a valid ONNX model: \(r)"
        case .invalidModel(let f, let r):
            return "\(f): invalid model: \(r)"
        case .unknownElementType(let f, let w, let c):
            return "\(f): \(w) has unknown element type \(c)"
        case .tensorData(let f, let t, let r):
            return "\(f): tensor '\(t)': \(r)"
        case .externalData(let f, let t, let r):
            return "\(f): tensor '\(t)': external data: \(r)"
        case .danglingValue(let f, let reader, let v):
            return "\(f): \(reader) reads '\(v)', which no node, graph input or initializer defines"
        case .duplicateDefinition(let f, let v, let a, let b):
            return "\(f): value '\(v)' is defined twice: by \(a) and by \(b)"
        case .cycle(let f, let nodes):
            return "\(f): the graph has a cycle through node \(nodes.prefix(4).joined(separator: ", node "))\(nodes.count > 4 ? ", ..." : "")"
        case .nestingTooDeep(let f, let n, let limit):
            return "\(f): node \(n): subgraphs nest deeper than \(limit) levels"
        }
    }
}

/// Errors raised while writing a model.
public enum ONNXExportError: Error, Equatable, CustomStringConvertible {
    /// The model is too large for a single protobuf file and external data was not allowed.
    case tooLarge(bytes: Int)
    /// Writing the file failed (nothing was left behind).
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case .tooLarge(let b):
            return "the model needs \(b) bytes, over protobuf's 2 GB limit: write its weights as external data"
        case .writeFailed(let f, let r):
            return "\(f): cannot write: \(r)"
        }
    }
}
