//! The message of a caught panic. Every layer that catches one (decode around symphonia, the
//! runner around its threads, the worker around a job) reports it the same way; it sits on the
//! bottom floor so each of them can reach it.

use std::any::Any;

/// The text a panic was raised with (`panic!("…")` carries a `&str` or a `String`), or a
/// placeholder for any other payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn str_string_and_other_payloads() {
        let caught = |f: fn()| std::panic::catch_unwind(f).expect_err("it panics");
        let literal = caught(|| panic!("plain"));
        let formatted = caught(|| panic!("formatted {}", 7));
        let other = caught(|| std::panic::panic_any(42_u8));
        assert_eq!(panic_message(literal.as_ref()), "plain");
        assert_eq!(panic_message(formatted.as_ref()), "formatted 7");
        assert_eq!(panic_message(other.as_ref()), "a panic without a message");
    }
}
