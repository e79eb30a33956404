import ArgumentParser
import SecretsStoreCore

/// A flag holding a Go duration (`30s`, `2m`, `1h30m`; see ``GoDuration``), parsed once, when the command line
/// is. A text that is not a duration still parses here, so that the command's `validate()` can refuse it with
/// the flag's name and an example (`--rotation-poll-interval 2x: not a positive duration such as 30s or 2m`)
/// instead of ArgumentParser's generic "The value … is invalid"; ``positive(_:example:)`` and
/// ``nonNegative(_:example:)`` are the one place that does.
struct GoDurationArgument: ExpressibleByArgument, Sendable {
    /// What the command line said.
    let text: String
    /// The duration `text` spells, or `nil` when it spells none.
    let duration: Duration?

    init(argument: String) {
        text = argument
        duration = GoDuration.parse(argument)
    }

    /// The default shown in `--help`: the text, as the user would type it.
    var defaultValueDescription: String { text }

    /// The duration, when it is greater than zero; else the error `--<flag> <text>: not a positive duration such
    /// as <example>`.
    func positive(_ flag: String, example: String) throws(ValidationError) -> Duration {
        guard let duration, duration > .zero else {
            throw ValidationError("--\(flag) \(text): not a positive duration such as \(example)")
        }
        return duration
    }

    /// The duration, zero included; else the error `--<flag> <text>: not a duration such as <example>`.
    func nonNegative(_ flag: String, example: String) throws(ValidationError) -> Duration {
        guard let duration else { throw ValidationError("--\(flag) \(text): not a duration such as \(example)") }
        return duration
    }
}
