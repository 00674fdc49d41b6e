//! Text for people (names, reasons) and the patterns the API documents for the names
//! it parses, each next to nothing but its rule: a unit test holds every pattern to the
//! parser it describes.

/// Text for people: trimmed, then 1 to `max` characters, none of them a control
/// character (so a name cannot break a log line or a console cell).
pub fn printable(s: &str, max: usize) -> Option<&str> {
    let text = s.trim();
    let ok = !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control);
    ok.then_some(text)
}

/// [`printable`] as a pattern: no control character (`char::is_control` is Unicode's
/// `Cc`: U+0000-U+001F, U+007F-U+009F) and at least one that is not white space. The
/// length is the schema's `maxLength`. ECMA-262's and Python's `\s` hold all of Unicode's
/// `White_Space` (which `trim` strips) and a little more (ECMA's U+FEFF), so a validator
/// in either dialect is at most stricter than the server, never looser.
pub const PRINTABLE_PATTERN: &str =
    r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";

/// A role or scope name ([`crate::model::Scope::parse`]).
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9:._/-]{1,64}$";

/// A space-separated scope list ([`crate::model::Scope::parse_space_separated`]): up to
/// 100 names (repeats included) between ASCII white space.
pub const SCOPE_LIST_PATTERN: &str =
    r"^[\t\n\f\r ]*(?:[A-Za-z0-9:._/-]{1,64}(?:[\t\n\f\r ]+|$)){0,100}$";

/// An audience ([`crate::model::Audience::parse`]): printable ASCII, no space.
pub const AUDIENCE_PATTERN: &str = r"^[!-~]{1,255}$";

/// A `client_id` ([`crate::model::ClientId::parse`]): URI-unreserved characters.
pub const CLIENT_ID_PATTERN: &str = r"^[A-Za-z0-9._~-]{1,128}$";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;
    use crate::model::{Audience, ClientId, Role, Scope};

    /// Strings near the rules' edges: the characters they name, white space, controls,
    /// and others, up to past the longest bound.
    fn text() -> impl Strategy<Value = String> {
        let chars = prop_oneof![
            4 => proptest::char::range('a', 'z'),
            2 => proptest::sample::select(vec![':', '.', '_', '/', '-', '~', '!', 'A', '0', '9']),
            2 => proptest::sample::select(vec![' ', '\t', '\n', '\u{a0}', '\u{2003}', '\u{feff}']),
            1 => proptest::sample::select(vec!['\0', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}']),
            1 => any::<char>(),
        ];
        prop_oneof![
            proptest::collection::vec(chars.clone(), 0..8),
            proptest::collection::vec(chars, 58..70),
            proptest::collection::vec(proptest::char::range('a', 'z'), 95..105),
            "[A-Za-z0-9:._/-]{60,70}".prop_map(|s| s.chars().collect()),
            proptest::collection::vec(proptest::char::range('!', '~'), 250..260),
        ]
        .prop_map(|c| c.into_iter().collect())
    }

    /// Compiled once: its counted repetitions make it slow to build.
    #[allow(clippy::unwrap_used)] // the constant above, checked by every case
    static SCOPE_LIST: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(SCOPE_LIST_PATTERN).unwrap());

    /// What a schema of `pattern` and at most `max` characters accepts.
    fn schema_accepts(pattern: &str, max: usize, s: &str) -> bool {
        #[allow(clippy::unwrap_used)] // the constants above, checked by every case
        let re = Regex::new(pattern).unwrap();
        re.is_match(s) && s.chars().count() <= max
    }

    proptest! {
        /// A name the schema accepts is one the parser accepts; and a name without
        /// surrounding white space (which the parser trims) the parser accepts is one the
        /// schema accepts. So the schema never promises more than the server takes.
        #[test]
        fn the_printable_pattern_is_the_printable_rule(s in text()) {
            for max in [100, 500] {
                let schema = schema_accepts(PRINTABLE_PATTERN, max, &s);
                let parsed = printable(&s, max).is_some();
                prop_assert!(!schema || parsed, "schema accepts {s:?}, parser refuses");
                if s.trim() == s {
                    prop_assert_eq!(schema, parsed, "{:?}", s);
                }
            }
        }

        #[test]
        fn the_name_pattern_is_the_scope_and_role_rule(s in text()) {
            let schema = schema_accepts(NAME_PATTERN, 64, &s);
            prop_assert_eq!(schema, Scope::parse(&s).is_ok(), "{:?}", s);
            prop_assert_eq!(schema, Role::parse(&s).is_ok(), "{:?}", s);
        }

        #[test]
        fn the_scope_list_pattern_is_the_scope_list_rule(s in prop_oneof![
            text(),
            proptest::collection::vec(prop_oneof!["[a-z:/]{1,3}", "[a-z]{63,65}", "[ \t\n\x0C\r\x0B]{1,2}"], 0..110)
                .prop_map(|parts| parts.concat()),
            proptest::collection::vec("[a-z]{1,3}", 95..105).prop_map(|names| names.join(" ")),
        ]) {
            prop_assert_eq!(
                SCOPE_LIST.is_match(&s),
                Scope::parse_space_separated(&s).is_ok(),
                "{:?}", s
            );
        }

        #[test]
        fn the_client_id_pattern_is_the_client_id_rule(s in prop_oneof![text(), "[A-Za-z0-9._~-]{120,130}"]) {
            prop_assert_eq!(schema_accepts(CLIENT_ID_PATTERN, 128, &s), ClientId::parse(&s).is_ok(), "{:?}", s);
        }

        #[test]
        fn the_audience_pattern_is_the_audience_rule(s in text()) {
            prop_assert_eq!(schema_accepts(AUDIENCE_PATTERN, 255, &s), Audience::parse(&s).is_ok(), "{:?}", s);
        }
    }
}
