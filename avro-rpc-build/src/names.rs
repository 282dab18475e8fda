//! Avro names to Rust identifiers: case conversion and keyword escaping.

/// `fooBar`, `FooBar`, `FOO_BAR` → `foo_bar`.
pub fn snake_case(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && !out.ends_with('_') && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `foo_bar`, `fooBar`, `FOO_BAR` → `FooBar`.
pub fn pascal_case(s: &str) -> String {
    let all_upper = s.chars().all(|c| !c.is_ascii_lowercase());
    let mut out = String::new();
    let mut upper_next = true;
    for c in s.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.push(c.to_ascii_uppercase());
            upper_next = false;
        } else if all_upper {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Enum variant names for `symbols`, falling back to the symbols themselves
/// when case conversion would make two collide.
pub fn variants(symbols: &[String]) -> Vec<String> {
    let v: Vec<String> = symbols.iter().map(|s| pascal_case(s)).collect();
    let unique: std::collections::HashSet<&String> = v.iter().collect();
    if unique.len() == v.len() {
        v
    } else {
        symbols.to_vec()
    }
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// `name`, escaped as a raw identifier if it is a keyword.
pub fn ident(name: &str) -> String {
    match name {
        // These cannot be raw identifiers.
        "self" | "Self" | "super" | "crate" => format!("{name}_"),
        n if KEYWORDS.contains(&n) => format!("r#{n}"),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(snake_case("getMovie"), "get_movie");
        assert_eq!(snake_case("echoBytes"), "echo_bytes");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("reply_to"), "reply_to");
        assert_eq!(pascal_case("HAPPY"), "Happy");
        assert_eq!(pascal_case("get_movie"), "GetMovie");
        assert_eq!(pascal_case("getMovie"), "GetMovie");
        assert_eq!(ident("type"), "r#type");
        assert_eq!(ident("self"), "self_");
        assert_eq!(
            variants(&["foo_bar".into(), "fooBar".into()]),
            ["foo_bar", "fooBar"]
        );
    }
}
