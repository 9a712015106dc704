//! The one error type of the command line. Commands return it; `crate::run`
//! renders it once, on stderr, and exits with its code.

use std::fmt;

#[derive(Debug)]
pub enum CliError {
    /// `error: MESSAGE`, then `   = hint: HINT` when there is one.
    Message {
        message: String,
        hint: Option<String>,
        code: i32,
    },
    /// Already rendered by `diagnostic::Renderer` (the source line, a caret,
    /// the notes): a script that failed or did not compile, `opsh check`'s
    /// problems.
    Rendered { text: String, code: i32 },
}

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> CliError {
        CliError::Message {
            message: message.into(),
            hint: None,
            code,
        }
    }

    /// Bad command-line usage (exit 64).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(crate::exit::USAGE, message)
    }

    /// opsh could not do what was asked (exit 2).
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError::new(crate::exit::ERROR, message)
    }

    pub fn rendered(code: i32, text: impl Into<String>) -> CliError {
        CliError::Rendered {
            text: text.into(),
            code,
        }
    }

    /// A rendered diagnostic keeps the notes it was rendered with.
    pub fn with_hint(self, h: impl Into<String>) -> CliError {
        match self {
            CliError::Message { message, code, .. } => CliError::Message {
                message,
                hint: Some(h.into()),
                code,
            },
            rendered => rendered,
        }
    }

    /// The same error ending the run with another code (a run whose
    /// recording could not be written ends in 2 whatever the script did).
    pub fn with_code(self, code: i32) -> CliError {
        match self {
            CliError::Message { message, hint, .. } => CliError::Message {
                message,
                hint,
                code,
            },
            CliError::Rendered { text, .. } => CliError::Rendered { text, code },
        }
    }

    pub fn code(&self) -> i32 {
        match self {
            CliError::Message { code, .. } | CliError::Rendered { code, .. } => *code,
        }
    }

    /// The text on stderr. Messages are never coloured, as before the
    /// renderer existed, so scripts that grep them see plain text.
    pub fn render(&self) -> String {
        match self {
            CliError::Message { message, hint, .. } => {
                let mut out = format!("error: {message}\n");
                if let Some(h) = hint {
                    out.push_str(&format!("   = hint: {h}\n"));
                }
                out
            }
            CliError::Rendered { text, .. } => text.clone(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Message { message, .. } => f.write_str(message),
            CliError::Rendered { text, .. } => f.write_str(text.trim_end()),
        }
    }
}

impl std::error::Error for CliError {}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> CliError {
        let err = CliError::failed(e.message);
        match e.hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_renders_with_its_hint() {
        let e = CliError::usage("--target \"x\" is not KIND=NAME").with_hint("kinds: pg");
        assert_eq!(
            e.render(),
            "error: --target \"x\" is not KIND=NAME\n   = hint: kinds: pg\n"
        );
        assert_eq!(e.code(), crate::exit::USAGE);
        assert_eq!(CliError::failed("no").render(), "error: no\n");
    }

    #[test]
    fn a_rendered_diagnostic_is_shown_as_it_is() {
        let text = "error: check failed: x\n  --> a.rhai:1:1\n";
        let e = CliError::rendered(crate::exit::CHECK_FAILED, text).with_hint("ignored");
        assert_eq!(e.render(), text);
        assert_eq!(e.with_code(2).code(), 2);
    }
}
