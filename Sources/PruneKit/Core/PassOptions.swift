import Foundation

/// A pass's options: a struct whose stored properties are declared with ``PassOption``, each with
/// its key, type, default, range or choices and help in one place.
///
/// ```swift
/// public struct Options: PassOptions {
///     @PassOption("sparsity", .fraction, help: "fraction of each group's units to remove")
///     public var sparsity = 0.3
///     @PassOption("steps", .atLeast(0), help: "optimizer steps")
///     public var steps = 30
///     @PassOption("norm", help: "weight norm that scores a unit")
///     public var norm: Norm = .l2          // enum Norm: String, PassOptionEnum { case l1, l2 }
///     public init() {}
/// }
/// ```
///
/// The pass reads typed properties (`options.steps`), so an undeclared key cannot be read. The
/// pipeline parser (``parse(_:)``), the printer (``pipelineOptions``), `prunec passes --options`
/// and the docs all read the same declarations. Properties whose type is itself a
/// ``PassOptionGroup`` (``PruningTarget``) contribute their options in place.
public protocol PassOptions: PassOptionGroup {}

/// A set of declared options that several passes share (``PruningTarget``), or a pass's own
/// (``PassOptions``).
public protocol PassOptionGroup: Sendable {
    /// The defaults (what a pipeline that sets no option gets).
    init()
    /// Checks that involve several options (two targets set at once, say); single-option ranges
    /// are declared on the option instead.
    ///
    /// - Throws: ``OptionError`` naming the option the message is about (the pipeline error points
    ///   at its column).
    func validate() throws
}

extension PassOptionGroup {
    /// Nothing to check across options.
    public func validate() throws {}

    /// Every option, in declaration order (nested groups in place).
    public static var declarations: [OptionSpec] {
        let context = OptionParsingContext(given: [:])
        _ = OptionParsingContext.$current.withValue(context) { Self() }
        return context.declared
    }

    /// Options from `key=value` text: every declared key may appear once; the others keep their
    /// defaults; then ``validate()`` runs on this group and every nested one.
    ///
    /// - Throws: ``OptionError`` for an unknown key (listing the declared ones), a value of the
    ///   wrong type, out of range or not among the choices, a missing required option, or a
    ///   failed cross-option check.
    public static func parse(_ given: [(key: String, value: String)]) throws -> Self {
        let context = OptionParsingContext(given: Dictionary(given.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }))
        let options = OptionParsingContext.$current.withValue(context) { Self() }
        let declared = Set(context.declared.map(\.key))
        for (key, _) in given where !declared.contains(key) {
            let keys = context.declared.map(\.key)
            throw OptionError(key: key, message: "is not an option of this pass"
                + (keys.isEmpty ? " (it takes none)" : " (options: \(keys.joined(separator: ", ")))"), unknown: true)
        }
        if let first = context.errors.first { throw first }
        try options.validateAll()
        return options
    }

    /// The options whose value differs from the default, as `key=value` in declaration order: with
    /// the pass name, the canonical pipeline text of these options.
    public var pipelineOptions: [(key: String, value: String)] {
        var out: [(String, String)] = []
        Self.walk(self) { option in
            if !option.isDefault { out.append((option.spec.key, option.text)) }
        }
        return out
    }

    /// Calls ``validate()`` on this group and every nested group.
    func validateAll() throws {
        try validate()
        for child in Mirror(reflecting: self).children {
            if let group = child.value as? any PassOptionGroup { try group.validateAll() }
        }
    }

    /// Visits the options of `group` and its nested groups in declaration order.
    static func walk(_ group: Any, _ visit: (any DeclaredOption) -> Void) {
        for child in Mirror(reflecting: group).children {
            if let option = child.value as? any DeclaredOption {
                visit(option)
            } else if child.value is any PassOptionGroup {
                walk(child.value, visit)
            }
        }
    }
}

/// The declaration of one option, as `prunec passes --options` and the docs list it.
public struct OptionSpec: Sendable, Equatable {
    /// The key in pipeline text (`sparsity` in `magnitude{sparsity=0.3}`).
    public let key: String
    /// How the value is written.
    public let kind: OptionKind
    /// The default as pipeline text; `nil` when the option is required.
    public let defaultText: String?
    /// The allowed range in words (`at least 1`), when the option declares one.
    public let range: String?
    /// One line of help.
    public let help: String

    /// `key=<kind> (default d, range): help`, the line `prunec passes --options` prints.
    public var summary: String {
        let facts = [defaultText.map { "default \($0)" } ?? "required", range].compactMap { $0 }
        return "\(key)=<\(kind)> (\(facts.joined(separator: "; "))): \(help)"
    }
}

/// How an option's value is written.
public enum OptionKind: Sendable, Equatable, CustomStringConvertible {
    /// A whole number.
    case int
    /// A real number (finite).
    case double
    /// A fraction in [0, 1], written `0.3` or `30%`.
    case fraction
    /// `true` or `false` (also `1`/`0`, `yes`/`no`).
    case bool
    /// Free text (no `,`, `{`, `}` or `=`).
    case string
    /// One of a fixed set of words.
    case choice([String])
    /// Words from a fixed set joined by `+`.
    case words([String])

    public var description: String {
        switch self {
        case .int: return "an integer"
        case .double: return "a number"
        case .fraction: return "a fraction (0.3 or 30%)"
        case .bool: return "true or false"
        case .string: return "a word"
        case .choice(let words): return "one of \(words.joined(separator: ", "))"
        case .words(let words): return "\(words.joined(separator: ", ")) joined by '+'"
        }
    }
}

/// Why an option value was refused.
public struct OptionError: Error, Equatable, CustomStringConvertible {
    /// The option's key.
    public let key: String
    /// What is wrong (the text after "option 'key' ").
    public let message: String
    /// The key is not declared (the pipeline error then points at the key, not the value).
    public let unknown: Bool

    /// An error about option `key`; `message` continues "option 'key' ...".
    public init(key: String, message: String, unknown: Bool = false) {
        self.key = key
        self.message = message
        self.unknown = unknown
    }

    public var description: String { "option '\(key)' \(message)" }
}

/// A type an option can hold: how it is parsed from and printed to pipeline text.
public protocol PassOptionValue: Sendable, Equatable {
    /// How the type is written, for help and errors.
    static var optionKind: OptionKind { get }
    /// The value of pipeline text, or `nil` when the text is not one.
    init?(optionText: String)
    /// The canonical pipeline text (parsing it gives the same value back).
    var optionText: String { get }
    /// Why `text` is not a value, when the type can say more than "expects <kind>".
    static func optionError(_ text: String) -> String?
}

extension PassOptionValue {
    /// Nothing more to say than the kind.
    public static func optionError(_ text: String) -> String? { nil }
}

extension Int: PassOptionValue {
    public static var optionKind: OptionKind { .int }
    public init?(optionText: String) { self.init(optionText) }
    public var optionText: String { String(self) }
}

extension Double: PassOptionValue {
    public static var optionKind: OptionKind { .double }
    /// Finite numbers only: NaN and infinities are refused at parse time.
    public init?(optionText: String) {
        guard let v = Double(optionText), v.isFinite else { return nil }
        self = v
    }
    /// The shortest text that reads back as the same value (`5.0`, `0.3`, `1e-05`).
    public var optionText: String {
        self == rounded() && abs(self) < 1e15 ? String(format: "%.1f", self) : "\(self)"
    }

    /// A number written `0.3` or `30%` (the percentage divided by 100); `nil` otherwise. The range
    /// is not checked.
    public init?(fractionText text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        let percent = t.hasSuffix("%")
        guard var v = Double(optionText: percent ? String(t.dropLast()) : t) else { return nil }
        if percent { v /= 100 }
        self = v
    }
}

extension Bool: PassOptionValue {
    public static var optionKind: OptionKind { .bool }
    public init?(optionText: String) {
        switch optionText.lowercased() {
        case "true", "1", "yes": self = true
        case "false", "0", "no": self = false
        default: return nil
        }
    }
    public var optionText: String { self ? "true" : "false" }
}

extension String: PassOptionValue {
    public static var optionKind: OptionKind { .string }
    public init?(optionText: String) {
        guard !optionText.isEmpty else { return nil }
        self = optionText
    }
    public var optionText: String { self }
}

/// An option whose value is one of an enum's cases, written as the raw value:
/// `enum Sampler: String, PassOptionEnum { case ddim, ddpm }`.
public protocol PassOptionEnum: PassOptionValue, RawRepresentable<String>, CaseIterable {}

extension PassOptionEnum {
    public static var optionKind: OptionKind { .choice(allCases.map(\.rawValue)) }
    public init?(optionText: String) { self.init(rawValue: optionText) }
    public var optionText: String { rawValue }
}

/// The values an option accepts beyond its type: a range, and for fractions the `30%` spelling.
public struct OptionBounds<Value: Comparable & Sendable>: Sendable {
    let lower: (Value, inclusive: Bool)?
    let upper: (Value, inclusive: Bool)?
    let percent: Bool

    /// Values ≥ `v`.
    public static func atLeast(_ v: Value) -> Self { Self(lower: (v, true), upper: nil, percent: false) }
    /// Values > `v`.
    public static func above(_ v: Value) -> Self { Self(lower: (v, false), upper: nil, percent: false) }
    /// Values in `a...b`.
    public static func between(_ a: Value, _ b: Value) -> Self { Self(lower: (a, true), upper: (b, true), percent: false) }

    func contains(_ v: Value) -> Bool {
        if let (l, inclusive) = lower, inclusive ? v < l : v <= l { return false }
        if let (u, inclusive) = upper, inclusive ? v > u : v >= u { return false }
        return true
    }

    func text(_ show: (Value) -> String) -> String {
        switch (lower, upper) {
        case let ((l, true)?, (u, true)?): return "from \(show(l)) to \(show(u))"
        case let ((l, li)?, (u, ui)?): return "\(li ? "at least" : "above") \(show(l)) and \(ui ? "at most" : "below") \(show(u))"
        case let ((l, true)?, nil): return "at least \(show(l))"
        case let ((l, false)?, nil): return "above \(show(l))"
        case let (nil, (u, true)?): return "at most \(show(u))"
        case let (nil, (u, false)?): return "below \(show(u))"
        case (nil, nil): return "any"
        }
    }
}

extension OptionBounds where Value == Double {
    /// A fraction in [0, 1], also written as a percentage (`30%`).
    public static var fraction: Self { Self(lower: (0, true), upper: (1, true), percent: true) }
    /// A fraction in [0, 1): removing 100% would remove everything.
    public static var fractionBelowOne: Self { Self(lower: (0, true), upper: (1, false), percent: true) }
    /// A positive number.
    public static var positive: Self { .above(0) }
}

/// One declared option (what ``PassOptionGroup/walk(_:_:)`` finds by reflection).
protocol DeclaredOption {
    var spec: OptionSpec { get }
    var text: String { get }
    var isDefault: Bool { get }
}

/// Declares one option of a ``PassOptions`` struct: key, range or choices and help here, type and
/// default from the property (`@PassOption("steps", .atLeast(0), help: "optimizer steps") var steps = 30`).
/// A declaration without a default makes the option required.
@propertyWrapper
public struct PassOption<Value: PassOptionValue>: Sendable, DeclaredOption {
    private var value: Value?
    private let defaultValue: Value?
    let spec: OptionSpec

    /// The option's value.
    public var wrappedValue: Value {
        get {
            guard let value else { preconditionFailure("required option '\(spec.key)' was read before it was set") }
            return value
        }
        set { value = newValue }
    }

    var text: String { value?.optionText ?? "" }
    var isDefault: Bool { value == defaultValue }

    private init(value: Value?, key: String, kind: OptionKind, range: String?, help: String,
                 parse: @Sendable (String) -> Value?, check: @Sendable (Value) -> String?) {
        defaultValue = value
        spec = OptionSpec(key: key, kind: kind, defaultText: value?.optionText, range: range, help: help)
        self.value = value
        guard let context = OptionParsingContext.current else { return }
        context.declare(spec)
        if let text = context.given[key] {
            let t = text.trimmingCharacters(in: .whitespaces)
            if let v = parse(t) {
                if let problem = check(v) {
                    context.errors.append(OptionError(key: key, message: "\(problem), got '\(t)'"))
                } else {
                    self.value = v
                }
            } else {
                context.errors.append(OptionError(key: key, message: Value.optionError(t) ?? "expects \(kind), got '\(t)'"))
            }
        } else if value == nil {
            context.errors.append(OptionError(key: key, message: "is required (\(kind)): \(help)", unknown: true))
        }
    }

    /// An option of any type; `check` returns why a parsed value is refused (or `nil`).
    public init(wrappedValue: Value, _ key: String, help: String, check: @escaping @Sendable (Value) -> String? = { _ in nil }) {
        self.init(value: wrappedValue, key: key, kind: Value.optionKind, range: nil, help: help,
                  parse: { Value(optionText: $0) }, check: check)
    }

    /// A required option (no default): a pipeline that does not set it is refused.
    public init(_ key: String, help: String) {
        self.init(value: nil, key: key, kind: Value.optionKind, range: nil, help: help,
                  parse: { Value(optionText: $0) }, check: { _ in nil })
    }
}

extension PassOption where Value: Comparable {
    /// An option whose value must lie within `bounds` (and pass `check`, when given); `hint`
    /// follows the range in the error (what to do instead).
    public init(wrappedValue: Value, _ key: String, _ bounds: OptionBounds<Value>, help: String, hint: String? = nil,
                check: @escaping @Sendable (Value) -> String? = { _ in nil }) {
        let range = bounds.text { $0.optionText }
        let refusal = "must be \(range)" + (hint.map { " (\($0))" } ?? "")
        self.init(value: wrappedValue, key: key, kind: Value.optionKind, range: range, help: help,
                  parse: { Value(optionText: $0) }, check: { bounds.contains($0) ? check($0) : refusal })
    }
}

extension PassOption where Value == Double {
    /// A number option within `bounds`; `.fraction` bounds also accept `30%`.
    public init(wrappedValue: Double, _ key: String, _ bounds: OptionBounds<Double>, help: String,
                check: @escaping @Sendable (Double) -> String? = { _ in nil }) {
        guard bounds.percent else {
            let range = bounds.text { $0.optionText }
            self.init(value: wrappedValue, key: key, kind: .double, range: range, help: help,
                      parse: { Double(optionText: $0) }, check: { bounds.contains($0) ? check($0) : "must be \(range)" })
            return
        }
        let belowOne = bounds.upper?.inclusive == false
        self.init(value: wrappedValue, key: key, kind: .fraction, range: belowOne ? "below 1 (100%)" : nil, help: help,
                  parse: { Double(fractionText: $0) },
                  check: { v in
                      guard (0...1).contains(v) else { return "must be between 0 and 1 (or 0% and 100%)" }
                      return belowOne && v == 1 ? "would remove everything: use a fraction below 1 (100%)" : check(v)
                  })
    }
}

/// The options being parsed on this thread: what the ``PassOption`` initializers read from and
/// declare into while a ``PassOptionGroup`` is made by ``PassOptionGroup/parse(_:)``.
final class OptionParsingContext: @unchecked Sendable {
    @TaskLocal static var current: OptionParsingContext?

    let given: [String: String]
    var declared: [OptionSpec] = []
    var errors: [OptionError] = []

    init(given: [String: String]) { self.given = given }

    func declare(_ spec: OptionSpec) {
        if declared.contains(where: { $0.key == spec.key }) {
            errors.append(OptionError(key: spec.key, message: "is declared twice (a pass and one of its option groups use the same key)"))
        }
        declared.append(spec)
    }
}

/// Options of a pass that has none.
public struct NoOptions: PassOptions {
    /// No options.
    public init() {}
}

extension PassOption: Equatable {
    /// Options compare by value (their declarations are the same by construction).
    public static func == (a: PassOption, b: PassOption) -> Bool { a.value == b.value }
}
