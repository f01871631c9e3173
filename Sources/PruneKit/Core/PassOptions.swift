import Foundation

/// The type of a pass option, which decides how its text is parsed and printed.
public enum OptionKind: Sendable, Equatable, CustomStringConvertible {
    /// A whole number.
    case int
    /// A real number.
    case double
    /// A fraction in [0, 1], written `0.3` or `30%`.
    case fraction
    /// `true` or `false` (also `1`/`0`).
    case bool
    /// Free text (no `,`, `{`, `}` or `=`).
    case string
    /// One of a fixed set of words.
    case choice([String])

    public var description: String {
        switch self {
        case .int: return "an integer"
        case .double: return "a number"
        case .fraction: return "a fraction (0.3 or 30%)"
        case .bool: return "true or false"
        case .string: return "a word"
        case .choice(let words): return "one of \(words.joined(separator: ", "))"
        }
    }
}

/// A parsed option value.
public enum OptionValue: Sendable, Equatable, CustomStringConvertible {
    /// A whole number (``OptionKind/int``).
    case int(Int)
    /// A real number (``OptionKind/double`` and ``OptionKind/fraction``).
    case double(Double)
    /// A flag (``OptionKind/bool``).
    case bool(Bool)
    /// A word (``OptionKind/string`` and ``OptionKind/choice(_:)``).
    case string(String)

    /// The canonical pipeline spelling (what ``Pipeline/description`` prints).
    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v):
            // Shortest text that reads back as the same Double.
            return v == v.rounded() && abs(v) < 1e15 ? String(format: "%.1f", v) : "\(v)"
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return v
        }
    }
}

/// One declared option of a pass: its key, type, default and help. The pipeline parser, the
/// printer and `prunec passes` all read this declaration.
public struct OptionSpec: Sendable {
    /// The key in pipeline text (`sparsity` in `magnitude{sparsity=0.3}`).
    public let key: String
    /// How the value is parsed.
    public let kind: OptionKind
    /// The value when the pipeline does not set it; `nil` makes the option required.
    public let defaultValue: OptionValue?
    /// One line for `prunec passes`.
    public let help: String

    /// Declares an option.
    public init(_ key: String, _ kind: OptionKind, default defaultValue: OptionValue?, help: String) {
        self.key = key
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
    }

    /// Parses `text` as this option's value, or returns why it cannot.
    public func parse(_ text: String) -> Result<OptionValue, OptionError> {
        let t = text.trimmingCharacters(in: .whitespaces)
        func bad() -> Result<OptionValue, OptionError> { .failure(OptionError(key: key, message: "expects \(kind), got '\(t)'")) }
        switch kind {
        case .int:
            guard let v = Int(t) else { return bad() }
            return .success(.int(v))
        case .double:
            guard let v = Double(t), v.isFinite else { return bad() }
            return .success(.double(v))
        case .fraction:
            let percent = t.hasSuffix("%")
            guard var v = Double(percent ? String(t.dropLast()) : t), v.isFinite else { return bad() }
            if percent { v /= 100 }
            guard (0...1).contains(v) else {
                return .failure(OptionError(key: key, message: "must be between 0 and 1 (or 0% and 100%), got '\(t)'"))
            }
            return .success(.double(v))
        case .bool:
            switch t.lowercased() {
            case "true", "1", "yes": return .success(.bool(true))
            case "false", "0", "no": return .success(.bool(false))
            default: return bad()
            }
        case .string:
            guard !t.isEmpty else { return bad() }
            return .success(.string(t))
        case .choice(let words):
            guard words.contains(t) else { return bad() }
            return .success(.string(t))
        }
    }
}

/// Why an option value was refused.
public struct OptionError: Error, Equatable, CustomStringConvertible {
    /// The option's key.
    public let key: String
    /// What is wrong.
    public let message: String
    /// An error about option `key`; `message` continues "option 'key' ...".
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "option '\(key)' \(message)" }
}

/// The values of a pass's options after parsing: every declared option, defaults filled in.
public struct OptionValues: Sendable, Equatable {
    /// Values by key.
    public private(set) var values: [String: OptionValue]

    /// Values as given (keys must match the declarations they are read against).
    public init(_ values: [String: OptionValue]) { self.values = values }

    /// The value of `key` as an `Int` (0 when absent or of another kind).
    public func int(_ key: String) -> Int {
        if case .int(let v)? = values[key] { return v }
        return 0
    }

    /// The value of `key` as a `Double` (integers convert).
    public func double(_ key: String) -> Double {
        switch values[key] {
        case .double(let v)?: return v
        case .int(let v)?: return Double(v)
        default: return 0
        }
    }

    /// The value of `key` as a `Bool`.
    public func bool(_ key: String) -> Bool {
        if case .bool(let v)? = values[key] { return v }
        return false
    }

    /// The value of `key` as a `String`.
    public func string(_ key: String) -> String {
        if case .string(let v)? = values[key] { return v }
        return values[key]?.description ?? ""
    }
}

/// A pass's options: declared once, read from ``OptionValues``.
public protocol PassOptions: Sendable {
    /// Every option, in the order `prunec passes` lists them.
    static var declarations: [OptionSpec] { get }
    /// Reads the options from validated values (every declared key is present).
    init(_ values: OptionValues) throws
}

/// Options of a pass that has none.
public struct NoOptions: PassOptions {
    /// None.
    public static let declarations: [OptionSpec] = []
    /// Reads nothing.
    public init(_ values: OptionValues) {}
    /// No options.
    public init() {}
}
