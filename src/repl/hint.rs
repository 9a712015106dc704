//! The signature of the call being typed, shown dimmed after the cursor:
//! `pg.query(` hints `pg.query(sql: string, params?: array) -> array`.

use super::context;
use super::state::Shared;
use crate::registry;

pub fn signature_hint(text: &str, pos: usize, shared: &Shared) -> Option<String> {
    // A hint in the middle of the line would push the rest of it away.
    if pos != text.len() {
        return None;
    }
    let call = context::call_at(text, pos, shared)?;
    let p = registry::find(call.module?, call.name)?;
    let mut hint = format!("  {}", p.signature());
    if p.mutates() {
        hint.push_str("  [mutates]");
    }
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_the_innermost_known_call() {
        let s = Shared::default();
        let h = signature_hint("pg.query(", 9, &s).unwrap();
        assert!(h.contains("pg.query(sql: string"), "{h}");
        let t = "sleep(";
        assert!(signature_hint(t, t.len(), &s).unwrap().contains("sleep("));
        assert_eq!(signature_hint("nothing(", 8, &s), None);
    }
}
