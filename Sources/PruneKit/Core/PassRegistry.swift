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
        let make: @Sendable (OptionValues) throws -> any Pass
    }

    private var entries: [String: Entry] = [:]

    /// An empty registry.
    public init() {}

    /// Registers pass type `P` (a second registration of the same name replaces the first).
    ///
    /// - Parameter origin: The plugin library that provides `P`, `nil` for a built-in pass.
    public mutating func register<P: Pass>(_ pass: P.Type, origin: String? = nil) {
        entries[P.name] = Entry(name: P.name, summary: P.summary, options: P.Options.declarations, origin: origin) { values in
            try P(options: P.Options(values))
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
            do {
                return try entry.make(values(for: element, of: entry, source: source))
            } catch let e as OptionError {
                // Checks across options (in the pass's Options init) point at the option they name.
                let column = element.options.first { $0.key == e.key }?.valueColumn ?? element.column
                throw PipelineError(text: source, column: max(1, column), message: "pass '\(entry.name)': \(e)")
            }
        }
    }

    /// Validated option values for one pipeline element: every declared key, defaults filled in.
    public func values(for element: Pipeline.Element, of entry: Entry, source: String) throws -> OptionValues {
        var values: [String: OptionValue] = [:]
        for o in element.options {
            guard let spec = entry.options.first(where: { $0.key == o.key }) else {
                let keys = entry.options.map(\.key)
                throw PipelineError(
                    text: source, column: max(1, o.column),
                    message: "pass '\(entry.name)' has no option '\(o.key)'"
                        + (keys.isEmpty ? " (it takes none)" : " (options: \(keys.joined(separator: ", ")))"))
            }
            switch spec.parse(o.value) {
            case .success(let v): values[o.key] = v
            case .failure(let e):
                throw PipelineError(text: source, column: max(1, o.valueColumn), message: "pass '\(entry.name)': \(e)")
            }
        }
        for spec in entry.options where values[spec.key] == nil {
            guard let d = spec.defaultValue else {
                throw PipelineError(text: source, column: max(1, element.column),
                                    message: "pass '\(entry.name)' needs option '\(spec.key)' (\(spec.kind)): \(spec.help)")
            }
            values[spec.key] = d
        }
        return OptionValues(values)
    }
}
