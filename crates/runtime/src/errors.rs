//! The one edge where a use case's [`Error`] becomes a gRPC [`Status`].
//!
//! The code comes from [`ErrorKind::grpc_code`]; invalid input carries its fields as
//! `google.rpc.BadRequest` details, so a client reads them by machine. Internal and
//! unavailable errors are logged here, once, with their whole cause chain; the caller
//! learns nothing of the internals.

use aftersales_core::{Error, ErrorKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The gRPC status of `error`, logged where the caller does not see the cause.
pub fn status(error: Error) -> Status {
    let code = Code::from(error.kind().grpc_code());
    match error.kind() {
        ErrorKind::InvalidArgument if !error.violations().is_empty() => {
            let mut details = ErrorDetails::new();
            for v in error.violations() {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            Status::with_error_details(code, error.message(), details)
        }
        ErrorKind::Internal => {
            tracing::error!(error = %error.chain(), "request failed");
            Status::internal("internal error")
        }
        ErrorKind::Unavailable => {
            tracing::warn!(error = %error.chain(), "a dependency is unavailable");
            Status::new(code, error.message())
        }
        ErrorKind::InvalidArgument
        | ErrorKind::NotFound
        | ErrorKind::AlreadyExists
        | ErrorKind::FailedPrecondition
        | ErrorKind::Conflict
        | ErrorKind::ResourceExhausted
        | ErrorKind::Unauthenticated
        | ErrorKind::PermissionDenied => Status::new(code, error.message()),
    }
}

/// INVALID_ARGUMENT naming `field`, with its `BadRequest` detail.
pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Status {
    status(Error::invalid(field, reason))
}

/// The field violations a status carries (for clients and tests).
pub fn field_violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_carries_its_fields_by_machine() {
        let s = status(Error::invalid("device_id.imei", "fails the Luhn check"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "device_id.imei: fails the Luhn check");
        assert_eq!(
            field_violations(&s),
            vec![(
                "device_id.imei".to_owned(),
                "fails the Luhn check".to_owned()
            )]
        );
    }

    #[test]
    fn internal_detail_never_reaches_the_caller() {
        let s = status(Error::internal("decoding row 42 of secret_table"));
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "internal error");
    }

    #[test]
    fn every_kind_maps_to_its_code() {
        for kind in ErrorKind::ALL {
            let s = status(Error::new(kind, "x"));
            assert_eq!(s.code() as i32, kind.grpc_code(), "{kind}");
        }
    }
}
