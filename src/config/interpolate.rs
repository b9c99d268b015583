//! `${VAR}` and `${VAR:-default}` in manifest strings, resolved when the manifest loads.
//! Only the braced form belongs to tend: `$NAME`, `$1` and `$$` are left for the shell, and
//! `$${` writes a literal `${`. An undefined variable without a default is an error, never "".

/// Expand every `${...}` in `text` using `lookup`. On failure, returns one message per
/// problem (each undefined variable, each malformed expansion), so all are reported at once.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    let out = expand(text, lookup, &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>, errors: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let at = &rest[dollar..];
        if let Some(after) = at.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body_and_rest) = at.strip_prefix("${") {
            match closing_brace(body_and_rest) {
                Some(close) => {
                    out.push_str(&expand_one(&body_and_rest[..close], lookup, errors));
                    rest = &body_and_rest[close + 1..];
                }
                None => {
                    errors.push(format!(
                        "`{}` has no closing `}}` (write `$${{` for a literal `${{`)",
                        shorten(at)
                    ));
                    out.push_str(at);
                    rest = "";
                }
            }
        } else {
            // A lone `$`, `$NAME`, `$1`, `$$`: the shell's business, copied as written.
            out.push('$');
            rest = &at[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Index of the `}` that closes an expansion whose body starts `body`, allowing nested
/// `${...}` in a default value.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"$${") {
            i += 3;
        } else if bytes[i..].starts_with(b"${") {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'}' {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
            i += 1;
        } else {
            i += 1;
        }
    }
    None
}

/// Expand the inside of one `${...}`.
fn expand_one(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> String {
    let name_len = body
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(body.len(), |(i, _)| i);
    let (name, operator) = body.split_at(name_len);
    if name.is_empty() {
        errors.push(format!(
            "invalid variable name in `${{{body}}}`: names are letters, digits and `_`, not starting with a digit"
        ));
        return String::new();
    }
    if operator.is_empty() {
        return match lookup(name) {
            Some(value) => value,
            None => {
                errors.push(format!(
                    "undefined variable `{name}` (set it, or give a default: `${{{name}:-default}}`)"
                ));
                String::new()
            }
        };
    }
    if let Some(default) = operator.strip_prefix(":-") {
        // Like sh's `:-`: an empty value counts as unset. The default is only expanded
        // when used, so an undefined variable inside an unused default is no error.
        return match lookup(name) {
            Some(value) if !value.is_empty() => value,
            _ => expand(default, lookup, errors),
        };
    }
    errors.push(format!(
        "unsupported expansion `${{{body}}}`: only `${{VAR}}` and `${{VAR:-default}}` are supported"
    ));
    String::new()
}

/// The start of `text` for an error message, so a long value does not flood the output.
fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("a b".into()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        interpolate(text, &env).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn err(text: &str) -> Vec<String> {
        interpolate(text, &env).expect_err(text)
    }

    #[test]
    fn expands_braced_variables() {
        assert_eq!(ok("${HOME}/bin"), "/home/me/bin");
        assert_eq!(ok("x${PORT}y${HOME}"), "x8080y/home/me");
        assert_eq!(ok("${SPACED}"), "a b");
        assert_eq!(ok("${EMPTY}"), "");
        assert_eq!(ok("no variables"), "no variables");
        assert_eq!(ok(""), "");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(ok("${MISSING:-fallback}"), "fallback");
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
        assert_eq!(ok("${PORT:-1}"), "8080");
        assert_eq!(ok("${MISSING:-}"), "");
        assert_eq!(ok("${MISSING:-a b c}"), "a b c");
        assert_eq!(ok("${MISSING:-${HOME}/x}"), "/home/me/x");
        assert_eq!(ok("${MISSING:-${ALSO:-deep}}"), "deep");
        assert_eq!(
            ok("${PORT:-${UNDEFINED}}"),
            "8080",
            "unused defaults are not expanded"
        );
    }

    #[test]
    fn leaves_the_shells_dollars_alone() {
        assert_eq!(ok("$HOME $1 $$ $ $@ $(date)"), "$HOME $1 $$ $ $@ $(date)");
        assert_eq!(ok("cost: 5$"), "cost: 5$");
        assert_eq!(ok("$${HOME}"), "${HOME}");
        assert_eq!(ok("a$${b}c ${PORT}"), "a${b}c 8080");
        assert_eq!(ok("${MISSING:-$${lit}}"), "${lit}");
    }

    #[test]
    fn undefined_variables_are_errors_not_empty_strings() {
        let errors = err("${NOPE} and ${NEITHER}");
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].contains("undefined variable `NOPE`"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("undefined variable `NEITHER`"),
            "{errors:?}"
        );
    }

    #[test]
    fn malformed_expansions_are_errors() {
        assert!(err("${HOME")[0].contains("no closing `}`"));
        assert!(err("${}")[0].contains("invalid variable name"));
        assert!(err("${1}")[0].contains("invalid variable name"));
        assert!(err("${A-B}")[0].contains("unsupported expansion `${A-B}`"));
        assert!(err("${A:?msg}")[0].contains("unsupported expansion"));
        assert!(err("${A B}")[0].contains("unsupported expansion"));
        assert!(err("${MISSING:-${HOME}")[0].contains("no closing"));
    }

    #[test]
    fn names_may_hold_digits_and_underscores() {
        let lookup = |name: &str| (name == "_A1_b2").then(|| "ok".to_string());
        assert_eq!(interpolate("${_A1_b2}", &lookup), Ok("ok".into()));
    }

    #[test]
    fn handles_multibyte_text_without_panicking() {
        assert_eq!(ok("héllo ${PORT} wörld €"), "héllo 8080 wörld €");
        assert_eq!(ok("${MISSING:-ünïcode}"), "ünïcode");
        assert!(err("${é}")[0].contains("invalid variable name"));
        let long = format!("${{{}", "é".repeat(100));
        assert!(err(&long)[0].contains('…'));
    }
}
