//! Duplicate object keys in JSON: readers disagree on which value counts (serde keeps the
//! last, many keep the first), so a JSON-RPC message with a duplicate key could be judged
//! on one value and acted on by the client with the other.

use std::collections::HashSet;

/// Whether any object in `json` (already known to parse) names a key twice. Keys are
/// compared decoded (`"a"` and `"\u0061"` are the same key). O(length).
pub fn has_duplicate_keys(json: &[u8]) -> bool {
    enum Open {
        Object {
            keys: HashSet<String>,
            key_next: bool,
        },
        Array,
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                let raw = &json[start..(i + 1).min(json.len())];
                if let Some(Open::Object { keys, key_next }) = stack.last_mut() {
                    if *key_next {
                        *key_next = false;
                        let key: String = serde_json::from_slice(raw).unwrap_or_default();
                        if !keys.insert(key) {
                            return true;
                        }
                    }
                }
            }
            b'{' => stack.push(Open::Object {
                keys: HashSet::new(),
                key_next: true,
            }),
            b'[' => stack.push(Open::Array),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Open::Object { key_next, .. }) = stack.last_mut() {
                    *key_next = true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_at_any_depth_and_in_any_spelling() {
        assert!(!has_duplicate_keys(
            br#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}],"d":"\"a\":1,\"a\""}"#
        ));
        assert!(has_duplicate_keys(br#"{"result":1,"result":2}"#));
        assert!(has_duplicate_keys(br#"[{"x":{"y":[{"k":1, "k" :2}]}}]"#));
        assert!(has_duplicate_keys(br#"{"result":1,"\u0072esult":2}"#));
        assert!(has_duplicate_keys(br#"{"a\"b":1,"a\"b":2}"#));
    }
}
