import Foundation
import ONNXProto

/// An operator set a model imports.
public struct OpsetImport: Hashable, Sendable {
    /// The domain (`""` for the default ONNX domain).
    public var domain: String
    /// The opset version.
    public var version: Int64

    public init(domain: String = "", version: Int64) {
        self.domain = domain
        self.version = version
    }
}

/// An ONNX model: metadata, opset imports, the main ``Graph`` and model-local functions.
///
/// Fields of `ModelProto` the IR does not interpret (training info, device configurations, unknown
/// fields) are kept and written back unchanged. Model-local functions are kept in wire form.
public final class Model {
    /// The main graph.
    public var graph: Graph
    /// The file the model was loaded from, if any (external data is resolved next to it).
    public internal(set) var sourceURL: URL?

    /// The imported `ModelProto` with the graph cleared.
    var proto: Onnx_ModelProto

    /// Creates a model around a graph.
    public init(graph: Graph, irVersion: Int64 = 10, opsets: [OpsetImport] = [OpsetImport(version: 21)], producerName: String = "prunec") {
        self.graph = graph
        self.proto = Onnx_ModelProto()
        self.proto.irVersion = irVersion
        self.proto.producerName = producerName
        self.opsetImports = opsets
    }

    init(graph: Graph, importing p: Onnx_ModelProto) {
        var rest = p
        rest.clearGraph()
        self.proto = rest
        self.graph = graph
    }

    /// The ONNX IR version.
    public var irVersion: Int64 {
        get { proto.irVersion }
        set { proto.irVersion = newValue }
    }
    /// Opset imports in file order.
    public var opsetImports: [OpsetImport] {
        get { proto.opsetImport.map { OpsetImport(domain: $0.domain, version: $0.version) } }
        set {
            proto.opsetImport = newValue.map { o in
                var p = Onnx_OperatorSetIdProto()
                p.domain = o.domain
                p.version = o.version
                return p
            }
        }
    }
    /// The opset version imported for a domain (`""` and `"ai.onnx"` are the same domain).
    public func opsetVersion(domain: String = "") -> Int64? {
        let d = domain == "ai.onnx" ? "" : domain
        return opsetImports.first { ($0.domain == "ai.onnx" ? "" : $0.domain) == d }?.version
    }
    /// The producing tool's name.
    public var producerName: String {
        get { proto.producerName }
        set { proto.producerName = newValue }
    }
    /// The producing tool's version.
    public var producerVersion: String {
        get { proto.producerVersion }
        set { proto.producerVersion = newValue }
    }
    /// The model's domain (reverse-DNS namespace).
    public var domain: String {
        get { proto.domain }
        set { proto.domain = newValue }
    }
    /// The model version number.
    public var modelVersion: Int64 {
        get { proto.modelVersion }
        set { proto.modelVersion = newValue }
    }
    /// The documentation string.
    public var docString: String {
        get { proto.docString }
        set { proto.docString = newValue }
    }
    /// Metadata key/value pairs in file order.
    public var metadata: [(key: String, value: String)] {
        get { proto.metadataProps.map { (key: $0.key, value: $0.value) } }
        set {
            proto.metadataProps = newValue.map { Onnx_StringStringEntryProto(key: $0.key, value: $0.value) }
        }
    }
    /// Model-local functions, in wire form.
    public var functions: [Onnx_FunctionProto] {
        get { proto.functions }
        set { proto.functions = newValue }
    }
}

extension Onnx_StringStringEntryProto {
    /// A key/value entry (metadata, external data locations).
    init(key: String, value: String) {
        self.init()
        self.key = key
        self.value = value
    }
}
