//! What Postgres can store, and how deep any parser here may go.
//!
//! `jsonb` and `text` cannot hold U+0000: one such character makes the whole statement fail, and a
//! batch statement with it fails every row of the batch. So every JSON value and text column is
//! made storable on its way into a statement: U+0000, in a string or an object key, becomes U+FFFD
//! (the replacement character). The raw bytes of a webhook are `bytea` and keep every byte.
//!
//! Nesting is bounded the same way everywhere: [`MAX_DEPTH`] levels of arrays and objects. No
//! parser or walker in Sentinel recurses deeper than that, so no input can overflow a stack.

use std::borrow::Cow;

use serde_json::{Map, Value as JsonValue};

/// The deepest nesting of arrays and objects any payload may have. serde_json refuses deeper
/// documents by itself (at 128); this leaves room for the job's own envelope around a payload.
pub const MAX_DEPTH: usize = 100;

/// What stands in for U+0000 in a stored string.
pub const NUL_SUBSTITUTE: char = '\u{FFFD}';

/// The text with U+0000 replaced by [`NUL_SUBSTITUTE`]; borrowed when there is none.
pub fn text(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Replaces U+0000 in every string and key of `value`, in place. Walks with its own stack, so a
/// value of any depth is safe.
pub fn json(value: &mut JsonValue) {
    let mut stack: Vec<&mut JsonValue> = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            JsonValue::String(string) => {
                if string.contains('\0') {
                    *string = string.replace('\0', "\u{FFFD}");
                }
            }
            JsonValue::Array(items) => stack.extend(items.iter_mut()),
            JsonValue::Object(object) => {
                if object.keys().any(|key| key.contains('\0')) {
                    let renamed: Map<String, JsonValue> = std::mem::take(object)
                        .into_iter()
                        .map(|(key, child)| (text(&key).into_owned(), child))
                        .collect();
                    *object = renamed;
                }
                stack.extend(object.values_mut());
            }
            JsonValue::Null | JsonValue::Bool(_) | JsonValue::Number(_) => {}
        }
    }
}

/// A storable copy of `value` (see [`json`]); no copy is made when nothing needs replacing.
pub fn json_cow(value: &JsonValue) -> Cow<'_, JsonValue> {
    if has_nul(value) {
        let mut owned = value.clone();
        json(&mut owned);
        Cow::Owned(owned)
    } else {
        Cow::Borrowed(value)
    }
}

fn has_nul(value: &JsonValue) -> bool {
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            JsonValue::String(string) if string.contains('\0') => return true,
            JsonValue::Array(items) => stack.extend(items),
            JsonValue::Object(object) => {
                if object.keys().any(|key| key.contains('\0')) {
                    return true;
                }
                stack.extend(object.values());
            }
            _ => {}
        }
    }
    false
}

/// The deepest nesting of a JSON value's arrays and objects (a scalar is 0), counted without
/// recursion.
pub fn depth(value: &JsonValue) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((node, level)) = stack.pop() {
        match node {
            JsonValue::Array(items) => {
                deepest = deepest.max(level + 1);
                stack.extend(items.iter().map(|item| (item, level + 1)));
            }
            JsonValue::Object(object) => {
                deepest = deepest.max(level + 1);
                stack.extend(object.values().map(|child| (child, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// The deepest bracket nesting of JSON-like text (`[`/`{` open, `]`/`}` close), counting every
/// bracket, quoted or not: the guard to run before handing text to a recursive parser. A repairer
/// reads quotes its own way (an apostrophe in prose opens no string for it), so skipping quoted
/// spans here would let `it's [[[[…` through. A linear scan that never recurses; brackets inside
/// strings only count while they are unclosed.
pub fn text_depth(raw: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for &byte in raw.as_bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clip("h\u{e9}llo", 2), "h");
        assert_eq!(clip("hello", 10), "hello");
    }

    #[test]
    fn nul_is_replaced_in_strings_and_keys_at_any_depth() {
        let mut value = json!({"a\u{0}b": ["x\u{0}", {"k": "\u{0}\u{0}"}], "clean": "yes"});
        assert!(has_nul(&value));
        json(&mut value);
        assert_eq!(
            value,
            json!({"a\u{FFFD}b": ["x\u{FFFD}"  , {"k": "\u{FFFD}\u{FFFD}"}], "clean": "yes"})
        );
        assert!(!has_nul(&value));
        assert!(matches!(json_cow(&value), Cow::Borrowed(_)));
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(text("ab"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_very_deep_value_is_walked_without_recursion() {
        let mut value = JsonValue::String("\0".into());
        for _ in 0..200_000 {
            value = JsonValue::Array(vec![value]);
        }
        assert_eq!(depth(&value), 200_000);
        json(&mut value);
        // Dropping a deep value recurses in serde_json; take it apart level by level instead.
        let mut node = value;
        while let JsonValue::Array(mut items) = node {
            node = items.pop().unwrap_or(JsonValue::Null);
        }
        assert_eq!(node, JsonValue::String("\u{FFFD}".into()));
    }

    #[test]
    fn text_depth_counts_every_bracket_so_quotes_cannot_hide_nesting() {
        // Found by fuzzing on a 2 MiB stack: an apostrophe hid a run of brackets from a
        // quote-aware count, and the repairer recursed into them.
        assert_eq!(text_depth(&format!("it's {}", "[".repeat(1_000))), 1_000);
        assert_eq!(text_depth(r#"{"a": "[x] [y]", "b": [1]}"#), 2);
        assert_eq!(text_depth(&"[".repeat(1_000_000)), 1_000_000);
        assert_eq!(text_depth("plain"), 0);
    }
}
