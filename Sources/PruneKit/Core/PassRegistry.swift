import PruneIR

/// Passes by name. Built-in passes and plugins register through the same ``register(_:)``.
public struct PassRegistry: Sendable {
    /// A registered pass: its name, summary, options, and how to make it from option values.
    public struct Entry: Sendable {
        /// The pipeline spelling.
        public let name: String
        /// One line for `prunec passes`.
        public let summary: String
        /// The declared options.
        public let options: [OptionSpec]
        /// The plugin library that registered the pass; `nil` for passes built into the host.
        public let origin: String?
        let make: @Sendable ([(key: String, value: String)]) throws -> any Pass
    }

    private var entries: [String: Entry] = [:]

    /// An empty registry.
    public init() {}

    /// Registers pass type `P` (a second registration of the same name replaces the first).
    ///
    /// - Parameter origin: The plugin library that provides `P`, `nil` for a built-in pass.
    public mutating func register<P: Pass>(_ pass: P.Type, origin: String? = nil) {
        entries[P.name] = Entry(name: P.name, summary: P.summary, options: P.Options.declarations, origin: origin) { given in
            try P(options: P.Options.parse(given))
        }
    }

    /// Adds an entry of another registry (a plugin's, see ``PluginLoader``), replacing one of the
    /// same name.
    public mutating func add(_ entry: Entry) {
        entries[entry.name] = entry
    }

    /// The entry for `name`.
    public func entry(_ name: String) -> Entry? { entries[name] }

    /// All entries, sorted by name.
    public var all: [Entry] { entries.values.sorted { $0.name < $1.name } }

    /// Makes the passes of `pipeline`, checking every name and option against the declarations.
    ///
    /// - Throws: ``PipelineError`` at the column of an unknown pass, an unknown option, a bad
    ///   value or a missing required option; the message lists what is valid.
    public func instantiate(_ pipeline: Pipeline, text: String? = nil) throws -> [any Pass] {
        let source = text ?? pipeline.description
        return try pipeline.elements.map { element in
            guard let entry = entries[element.name] else {
                let known = all.map(\.name).joined(separator: ", ")
                throw PipelineError(text: source, column: max(1, element.column),
                                    message: "unknown pass '\(element.name)'" + (known.isEmpty ? "" : " (passes: \(known))"))
            }
            for o in element.options where !entry.options.contains(where: { $0.key == o.key }) {
                let keys = entry.options.map(\.key)
                throw PipelineError(
                    text: source, column: max(1, o.column),
                    message: "pass '\(entry.name)' has no option '\(o.key)'"
                        + (keys.isEmpty ? " (it takes none)" : " (options: \(keys.joined(separator: ", ")))"))
            }
            for spec in entry.options where spec.defaultText == nil && !element.options.contains(where: { $0.key == spec.key }) {
                throw PipelineError(text: source, column: max(1, element.column),
                                    message: "pass '\(entry.name)' needs option '\(spec.key)' (\(spec.kind)): \(spec.help)")
            }
            do {
                return try entry.make(element.options.map { ($0.key, $0.value) })
            } catch let e as OptionError {
                // Unknown and missing options point at the key (or the pass); bad values at the value.
                let option = element.options.first { $0.key == e.key }
                let column = (e.unknown ? option?.column : option?.valueColumn) ?? element.column
                throw PipelineError(text: source, column: max(1, column), message: "pass '\(entry.name)': \(e)")
            }
        }
    }
}
