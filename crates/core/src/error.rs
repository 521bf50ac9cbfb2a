//! One error spine for every service.
//!
//! Every failure has an [`ErrorKind`]. The table in [`ErrorKind::grpc_code`] and
//! [`ErrorKind::retry`] is the only place that says what a kind means: the gRPC code a
//! caller gets, and whether a consumer tries the event again. Services' own errors
//! convert into [`Error`] by saying their kind; nothing maps store or domain errors to
//! codes anywhere else.

use std::fmt;

/// What went wrong, as a caller or a retry loop needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed; [`Error::violations`] name the fields.
    InvalidArgument,
    NotFound,
    /// The object exists, or the idempotency key was used for another request.
    AlreadyExists,
    /// The request is well formed but the object's state does not allow it.
    FailedPrecondition,
    /// Another writer got there first; deciding again on fresh state may succeed.
    Conflict,
    /// A quota or capacity is used up (a full service center, too many requests).
    ResourceExhausted,
    /// A dependency (database, peer service, provider) cannot be reached now.
    Unavailable,
    Unauthenticated,
    PermissionDenied,
    /// A defect or corrupt data; the caller learns nothing more.
    Internal,
}

/// What a consumer does with an event whose handling failed with a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// It will fail the same way every time: a dead letter at once.
    Never,
    /// Later, with backoff.
    Later,
    /// At once: a lost race usually succeeds on the next decision.
    AtOnce,
}

impl ErrorKind {
    pub const ALL: [Self; 10] = [
        Self::InvalidArgument,
        Self::NotFound,
        Self::AlreadyExists,
        Self::FailedPrecondition,
        Self::Conflict,
        Self::ResourceExhausted,
        Self::Unavailable,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::Internal,
    ];

    /// The table: the gRPC status code (as numbered by the gRPC spec) and the retry
    /// decision of each kind.
    const fn row(self) -> (i32, Retry) {
        match self {
            Self::InvalidArgument => (3, Retry::Never),
            Self::NotFound => (5, Retry::Never),
            Self::AlreadyExists => (6, Retry::Never),
            // The state may change (a later event arrives first, then this one fits).
            Self::FailedPrecondition => (9, Retry::Later),
            Self::Conflict => (10, Retry::AtOnce),
            Self::ResourceExhausted => (8, Retry::Later),
            Self::Unavailable => (14, Retry::Later),
            Self::Unauthenticated => (16, Retry::Never),
            Self::PermissionDenied => (7, Retry::Never),
            // A database hiccup surfaces as internal too; a bounded retry costs little
            // and the dead letter follows if it persists.
            Self::Internal => (13, Retry::Later),
        }
    }

    /// The gRPC status code, as numbered by the gRPC specification.
    pub const fn grpc_code(self) -> i32 {
        self.row().0
    }

    pub const fn retry(self) -> Retry {
        self.row().1
    }

    /// The name a log or a metric label uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::Conflict => "conflict",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bad field of a request: its path (`contact_address.country`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every use case: a kind, a message, the bad fields, and the cause.
///
/// The message of an [`ErrorKind::Internal`] error is for the log, never for the
/// caller. `Display` shows the message alone; the cause is [`std::error::Error::source`],
/// so a log writes the whole chain once (see [`Error::chain`]).
pub struct Error {
    kind: ErrorKind,
    message: String,
    violations: Vec<FieldViolation>,
    source: Option<Source>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            violations: Vec::new(),
            source: None,
        }
    }

    /// INVALID_ARGUMENT naming one field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldViolation::new(field, reason)])
    }

    /// INVALID_ARGUMENT naming every bad field at once.
    pub fn invalid_fields(violations: Vec<FieldViolation>) -> Self {
        let message = violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            kind: ErrorKind::InvalidArgument,
            message,
            violations,
            source: None,
        }
    }

    /// NOT_FOUND: `what` is the object, as in "repair order 42".
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn exhausted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExhausted, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// INTERNAL: `context` says what was being done, for the log.
    pub fn internal(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, context)
    }

    /// Keeps `source` as the cause, for the log's chain.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// The message and every cause, `outer: inner: innermost`, for one log line.
    pub fn chain(&self) -> String {
        let mut line = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let text = cause.to_string();
            // A wrapper that repeats its cause's text adds nothing to the line.
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            next = cause.source();
        }
        line
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("violations", &self.violations)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Cause(&'static str, Option<Box<Cause>>);
    impl fmt::Display for Cause {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Cause {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|c| c as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn every_kind_has_its_own_grpc_code() {
        let mut codes: Vec<i32> = ErrorKind::ALL.iter().map(|k| k.grpc_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert!(!codes.contains(&0), "no kind is OK");
        assert!(!codes.contains(&2), "no kind is UNKNOWN");
    }

    #[test]
    fn the_table_says_what_consumers_retry() {
        assert_eq!(ErrorKind::Conflict.retry(), Retry::AtOnce);
        assert_eq!(ErrorKind::Unavailable.retry(), Retry::Later);
        assert_eq!(ErrorKind::InvalidArgument.retry(), Retry::Never);
        assert_eq!(ErrorKind::AlreadyExists.retry(), Retry::Never);
    }

    #[test]
    fn invalid_names_each_field_in_the_message_and_the_violations() {
        let error = Error::invalid_fields(vec![
            FieldViolation::new("imei", "fails the Luhn check"),
            FieldViolation::new("country", "is not ISO 3166-1 alpha-2"),
        ]);
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            error.to_string(),
            "imei: fails the Luhn check; country: is not ISO 3166-1 alpha-2"
        );
        assert_eq!(error.violations()[1].field, "country");
    }

    #[test]
    fn the_chain_has_every_cause_once() {
        let cause = Cause("connection refused", None);
        let wrapper = Cause("database error", Some(Box::new(cause)));
        let error = Error::internal("loading order 7").with_source(wrapper);
        assert_eq!(error.to_string(), "loading order 7");
        assert_eq!(
            error.chain(),
            "loading order 7: database error: connection refused"
        );
    }
}
