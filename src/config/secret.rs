//! A value that must never reach a log line or an error message (webhook
//! URLs embed their credentials; signing keys are keys). Its `Debug` and
//! `Display` print a placeholder; only [`Secret::expose`] gives the value.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: pass it to the HTTP client, never to a formatter.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new("https://hooks.slack.com/services/T000/B000/XXXX");
        assert!(!format!("{secret:?} {secret}").contains("hooks"));
        assert_eq!(
            secret.expose(),
            "https://hooks.slack.com/services/T000/B000/XXXX"
        );
    }
}
