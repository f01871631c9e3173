import Foundation

/// A pipeline in MLIR-style text: `magnitude{sparsity=0.3,scope=global},fold-masks,dce`.
///
/// ``parse(_:)`` reads the text; ``description`` prints it back in canonical form (no spaces), so
/// `Pipeline.parse(p.description) == p` and, for canonical text, `Pipeline.parse(s).description == s`.
/// Errors carry the 1-based column they point at.
public struct Pipeline: Equatable, Sendable, CustomStringConvertible {
    /// One pass invocation.
    public struct Element: Equatable, Sendable, CustomStringConvertible {
        /// The pass name.
        public var name: String
        /// Options as written: key and value text, in order.
        public var options: [Option]
        /// Column of the name in the parsed text (1-based; 0 when built in code).
        public var column: Int

        /// One `key=value`.
        public struct Option: Equatable, Sendable {
            /// The key.
            public var key: String
            /// The value text (trimmed).
            public var value: String
            /// Column of the key (1-based; 0 when built in code).
            public var column: Int
            /// Column of the value (1-based; 0 when built in code).
            public var valueColumn: Int

            /// An option written in code.
            public init(key: String, value: String, column: Int = 0, valueColumn: Int = 0) {
                self.key = key
                self.value = value
                self.column = column
                self.valueColumn = valueColumn
            }

            // Columns are where the text came from, not what it says.
            public static func == (a: Option, b: Option) -> Bool { a.key == b.key && a.value == b.value }
        }

        /// An element written in code.
        public init(name: String, options: [Option] = [], column: Int = 0) {
            self.name = name
            self.options = options
            self.column = column
        }

        public static func == (a: Element, b: Element) -> Bool { a.name == b.name && a.options == b.options }

        public var description: String {
            options.isEmpty ? name : name + "{" + options.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
        }
    }

    /// The passes, in order.
    public var elements: [Element]

    /// A pipeline of `elements`.
    public init(_ elements: [Element]) { self.elements = elements }

    public var description: String { elements.map(\.description).joined(separator: ",") }

    /// Concatenates pipelines (several `--pass` flags make one pipeline).
    public static func + (a: Pipeline, b: Pipeline) -> Pipeline { Pipeline(a.elements + b.elements) }

    /// Parses pipeline text. Whitespace around names, keys and values is ignored.
    ///
    /// - Throws: ``PipelineError`` pointing at the offending column.
    public static func parse(_ text: String) throws -> Pipeline {
        var p = Parser(text: Array(text), source: text)
        return try p.pipeline()
    }

    private struct Parser {
        let text: [Character]
        let source: String
        var i = 0

        func error(_ message: String, at index: Int? = nil) -> PipelineError {
            PipelineError(text: source, column: (index ?? i) + 1, message: message)
        }

        mutating func skipSpaces() { while i < text.count && text[i].isWhitespace { i += 1 } }

        static func isNameCharacter(_ c: Character) -> Bool {
            c.isLetter || c.isNumber || c == "-" || c == "_" || c == "."
        }

        mutating func word(_ what: String) throws -> (String, Int) {
            skipSpaces()
            let start = i
            while i < text.count && Parser.isNameCharacter(text[i]) { i += 1 }
            guard i > start else {
                if i >= text.count { throw error("expected \(what), found the end of the pipeline") }
                throw error("expected \(what), found '\(text[i])'")
            }
            return (String(text[start..<i]), start + 1)
        }

        mutating func pipeline() throws -> Pipeline {
            var elements: [Element] = []
            skipSpaces()
            if i >= text.count { throw error("the pipeline is empty") }
            while true {
                elements.append(try element())
                skipSpaces()
                if i >= text.count { break }
                guard text[i] == "," else { throw error("expected ',' between passes, found '\(text[i])'") }
                i += 1
            }
            return Pipeline(elements)
        }

        mutating func element() throws -> Element {
            let (name, column) = try word("a pass name")
            var e = Element(name: name, column: column)
            skipSpaces()
            guard i < text.count, text[i] == "{" else { return e }
            let open = i
            i += 1
            skipSpaces()
            if i < text.count && text[i] == "}" { i += 1; return e }
            var seen: Set<String> = []
            while true {
                let (key, keyColumn) = try word("an option name")
                skipSpaces()
                guard i < text.count, text[i] == "=" else {
                    throw error(i < text.count ? "expected '=' after option '\(key)', found '\(text[i])'" : "expected '=' after option '\(key)'")
                }
                i += 1
                skipSpaces()
                let valueStart = i
                while i < text.count && !",}{=".contains(text[i]) { i += 1 }
                let value = String(text[valueStart..<i]).trimmingCharacters(in: .whitespaces)
                guard !value.isEmpty else { throw error("option '\(key)' has no value", at: valueStart) }
                guard seen.insert(key).inserted else { throw error("option '\(key)' is given twice", at: keyColumn - 1) }
                e.options.append(.init(key: key, value: value, column: keyColumn, valueColumn: valueStart + 1))
                guard i < text.count else { throw error("unclosed '{' (opened here)", at: open) }
                if text[i] == "}" { i += 1; return e }
                guard text[i] == "," else { throw error("unexpected '\(text[i])' in the options of '\(name)'") }
                i += 1
            }
        }
    }
}

/// A pipeline that cannot be parsed or resolved, with the column it points at.
public struct PipelineError: Error, Equatable, CustomStringConvertible {
    /// The pipeline text.
    public let text: String
    /// 1-based column of the problem.
    public let column: Int
    /// What is wrong.
    public let message: String

    /// The message, then the pipeline with a caret under the column.
    public var description: String {
        "\(message) (column \(column))\n  \(text)\n  \(String(repeating: " ", count: max(0, column - 1)))^"
    }
}
