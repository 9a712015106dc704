//! What a failed call reports, to the script and to the person reading it.

use crate::cancel::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The primitive failed (server error, unreachable, bad reply).
    Failed,
    /// The script passed something the primitive cannot use.
    BadInput,
    /// A safety refusal (protected target, audit log, limit).
    Refused,
    /// The per-call timeout elapsed.
    Timeout,
    /// `fail(msg)`: a check failed.
    CheckFailed,
    /// `exit(n)`: end the run now with this code.
    Exit(i32),
    /// A mutation was sent and what became of it is unknown (the
    /// connection died before the answer): never retried.
    OutcomeUnknown,
}

/// What is known of a mutation that did not return normally: whether it
/// changed the target. Dispatch audits it and says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It landed (e.g. the scale was accepted, then the wait was interrupted).
    Yes,
    /// It did not (e.g. PostgreSQL confirmed the cancel of the statement).
    No,
    /// It was sent, and nothing tells whether it landed.
    Unknown,
}

impl Applied {
    /// The audit log's `outcome` for it.
    pub fn outcome(self) -> &'static str {
        match self {
            Applied::Yes => "applied",
            Applied::No => "not_applied",
            Applied::Unknown => "unknown",
        }
    }
}

/// Carried by the (uncatchable) termination that `exit(n)` raises.
#[derive(Debug, Clone, Copy)]
pub struct ExitCode(pub i32);

/// What a primitive reports when it fails. `message` says what failed,
/// `cause` what the system said, `hint` what to try.
#[derive(Debug, Clone)]
pub struct OpError {
    pub kind: ErrorKind,
    pub message: String,
    pub cause: Option<String>,
    pub hint: Option<String>,
    /// Set when the call was cancelled: the run is ending.
    pub cancelled: Option<Reason>,
    /// For a mutation: what is known of its effect (None: an error before
    /// anything was sent, or the primitive does not know). Boxed: errors
    /// travel in every Result and should stay small.
    pub known: Option<Box<Known>>,
}

/// What a stopped mutation knows of its effect.
#[derive(Debug, Clone)]
pub struct Known {
    pub applied: Applied,
    /// How opsh knows, or why it cannot.
    pub why: String,
    /// For a mutation that landed anyway: its result (from/to...), for the
    /// line on stderr and the audit log.
    pub result: Option<rhai::Dynamic>,
}

/// The innermost error of `e`'s source chain: client libraries wrap the one
/// line that says what happened ("invalid peer certificate: UnknownIssuer")
/// in generic layers ("client error (Connect)").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

impl OpError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        OpError {
            kind,
            message: message.into(),
            cause: None,
            hint: None,
            cancelled: None,
            known: None,
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// What is known of the mutation's effect (see `Applied`).
    pub fn with_applied(
        mut self,
        applied: Applied,
        why: impl Into<String>,
        result: Option<rhai::Dynamic>,
    ) -> Self {
        self.known = Some(Box::new(Known {
            applied,
            why: why.into(),
            result,
        }));
        self
    }
    pub fn hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint.or(self.hint);
        self
    }
}

impl From<crate::config::ConfigError> for OpError {
    fn from(e: crate::config::ConfigError) -> Self {
        OpError::bad_input(e.message).hint_opt(e.hint)
    }
}

/// The error value a script sees (and can `catch`): it has `message`,
/// `primitive`, `target`, `cause`, `hint` and `kind` properties.
#[derive(Debug, Clone)]
pub struct PrimitiveError {
    pub primitive: String,
    pub target: Option<String>,
    pub kind: ErrorKind,
    pub message: String,
    pub cause: Option<String>,
    pub hint: Option<String>,
}

pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Failed => "failed",
        ErrorKind::BadInput => "bad_input",
        ErrorKind::Refused => "refused",
        ErrorKind::Timeout => "timeout",
        ErrorKind::CheckFailed => "check_failed",
        ErrorKind::Exit(_) => "exit",
        ErrorKind::OutcomeUnknown => "outcome_unknown",
    }
}

impl PrimitiveError {
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind)
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::CheckFailed => crate::exit::CHECK_FAILED,
            ErrorKind::Refused => crate::exit::REFUSED,
            ErrorKind::OutcomeUnknown => crate::exit::UNKNOWN,
            _ => crate::exit::ERROR,
        }
    }
}

impl std::fmt::Display for PrimitiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind == ErrorKind::CheckFailed {
            return f.write_str(&self.message);
        }
        write!(f, "{}: {}", self.primitive, self.message)?;
        if let Some(c) = &self.cause {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}
