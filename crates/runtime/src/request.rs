//! What a gRPC request says about who sends it, as part of what.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aftersales_auth::Principal;
use aftersales_core::clock::SharedClock;
use aftersales_eventstore::CommandContext;
use chrono::{DateTime, Utc};
use tonic::Status;
use tonic::metadata::MetadataMap;
use uuid::Uuid;

/// The command context of a request, from its metadata:
/// `x-command-id` (an idempotency key), `x-correlation-id`, `x-causation-id`,
/// `x-actor`, `traceparent` and `tracestate`. A header that is there but malformed
/// is INVALID_ARGUMENT naming it.
fn command_context(
    metadata: &MetadataMap,
    region: &str,
    now: DateTime<Utc>,
) -> Result<CommandContext, Status> {
    let header = |name: &str| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let uuid = |name: &'static str| -> Result<Option<Uuid>, Status> {
        header(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| crate::errors::invalid(name, "not a UUID"))
            })
            .transpose()
    };
    let (traceparent, tracestate) = aftersales_messaging::trace::current_trace_context();
    Ok(CommandContext {
        command_id: uuid("x-command-id")?,
        correlation_id: uuid("x-correlation-id")?.unwrap_or_else(Uuid::now_v7),
        causation_id: uuid("x-causation-id")?,
        // The server span (a child of the caller's, see `telemetry`) when spans
        // are recorded, so what this command causes continues from it.
        traceparent: traceparent.or_else(|| header("traceparent")),
        tracestate: tracestate.or_else(|| header("tracestate")),
        actor: header("x-actor")
            .filter(|a| !a.is_empty() && a.len() <= 200)
            .unwrap_or_else(|| "anonymous".into()),
        region: region.to_owned(),
        now,
        request_fingerprint: None,
    })
}

/// What a service's API needs to turn requests into commands: its region and its
/// clock (the API is where time enters a command), and the live streams open.
#[derive(Debug, Clone)]
pub struct Requests {
    pub region: String,
    pub clock: SharedClock,
    streams: LiveStreams,
}

/// Live streams (watches) one caller may hold open on one server.
pub const MAX_LIVE_STREAMS: usize = 10;

/// Live streams open per caller, and in all (`""` counts the total).
#[derive(Debug, Clone)]
struct LiveStreams {
    open: Arc<Mutex<HashMap<String, usize>>>,
    /// Live streams the process serves at once, all callers together.
    cap: usize,
}

/// One open live stream; dropping it (the stream ends) frees its place.
#[derive(Debug)]
pub struct StreamPermit {
    streams: LiveStreams,
    /// `None` without authentication: only the process-wide count applies.
    caller: Option<String>,
}

/// The key the process-wide count is kept under (no caller's name is empty).
const ALL: &str = "";

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.open.lock() {
            for key in [self.caller.as_deref(), Some(ALL)].into_iter().flatten() {
                if let Some(count) = open.get_mut(key) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        open.remove(key);
                    }
                }
            }
        }
    }
}

impl Requests {
    pub fn new(region: impl Into<String>, clock: SharedClock) -> Self {
        Self {
            region: region.into(),
            clock,
            streams: LiveStreams {
                open: Arc::default(),
                cap: 10_000,
            },
        }
    }

    /// At most `cap` live streams in this process, all callers together.
    pub fn with_live_stream_cap(mut self, cap: usize) -> Self {
        self.streams.cap = cap;
        self
    }

    /// A place for one more live stream, or RESOURCE_EXHAUSTED when the caller
    /// holds [`MAX_LIVE_STREAMS`] already or the process serves its cap. Without
    /// authentication only the process-wide cap applies.
    pub fn live_stream<M>(&self, request: &tonic::Request<M>) -> Result<StreamPermit, Status> {
        let caller = request
            .extensions()
            .get::<Principal>()
            .map(Principal::actor);
        let mut open = self
            .streams
            .open
            .lock()
            .map_err(|_| Status::internal("the stream count is poisoned"))?;
        if open.get(ALL).copied().unwrap_or(0) >= self.streams.cap {
            return Err(Status::resource_exhausted(format!(
                "this server holds {} live streams, its most; try again later",
                self.streams.cap
            )));
        }
        if let Some(caller) = &caller {
            let count = open.entry(caller.clone()).or_insert(0);
            if *count >= MAX_LIVE_STREAMS {
                return Err(Status::resource_exhausted(format!(
                    "at most {MAX_LIVE_STREAMS} live streams per caller; close one first"
                )));
            }
            *count += 1;
        }
        *open.entry(ALL.to_owned()).or_insert(0) += 1;
        Ok(StreamPermit {
            streams: self.streams.clone(),
            caller,
        })
    }

    /// The command context of a request, bound to its body: with an
    /// `x-command-id`, a retry of the same request finds its earlier result and
    /// another request under the same key is ALREADY_EXISTS.
    pub fn context<M: prost::Message>(
        &self,
        request: &tonic::Request<M>,
    ) -> Result<CommandContext, Status> {
        let mut ctx = command_context(request.metadata(), &self.region, self.clock.now())?;
        // With authentication the token says who acts, whatever `x-actor` claims;
        // a key is bound to its caller as well as its request.
        let caller = request.extensions().get::<Principal>();
        if let Some(principal) = caller {
            ctx.actor = principal.actor();
            // A service acting on someone's request names them; the history
            // records both. Only a service's word on this is taken.
            if principal.role == aftersales_auth::Role::Service
                && let Some(person) = request
                    .metadata()
                    .get(END_USER_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 200)
            {
                ctx.actor = format!("{} for {person}", ctx.actor);
            }
        }
        if ctx.command_id.is_some() {
            ctx.request_fingerprint = Some(fingerprint(
                request.get_ref(),
                caller.map(Principal::actor).as_deref(),
            ));
        }
        Ok(ctx)
    }
}

/// The person a service acts for, as their own request's actor named them
/// (`technician:tech-1`): recorded with the service's identity.
pub const END_USER_HEADER: &str = "x-end-user";

/// `message` as a request a service makes for the person behind `ctx`.
pub fn on_behalf<M>(message: M, ctx: &CommandContext) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    if let Ok(actor) = ctx.actor.parse() {
        request.metadata_mut().insert(END_USER_HEADER, actor);
    }
    request
}

/// SHA-256 of a message's type, its caller (when authenticated) and its encoding.
/// Our requests have no map fields, so prost encodes equal messages to equal bytes.
pub fn fingerprint<M: prost::Message>(message: &M, caller: Option<&str>) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(std::any::type_name::<M>().as_bytes());
    hasher.update([0]);
    // Without a caller the digest is what it always was, so keys stored before
    // authentication keep matching their retries.
    if let Some(caller) = caller {
        hasher.update(caller.as_bytes());
        hasher.update([0]);
    }
    hasher.update(message.encode_to_vec());
    hasher.finalize().into()
}

/// A request carrying `command_id` as its `x-command-id`, for a caller that retries.
pub fn with_command_id<M>(message: M, command_id: Uuid) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = command_id.to_string().parse() {
        request.metadata_mut().insert("x-command-id", value);
    }
    request
}

/// A protobuf timestamp from a request; `field` names it in the error.
pub fn timestamp_from_proto(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<DateTime<Utc>, Status> {
    let t = t.ok_or_else(|| crate::errors::invalid(field, "is required"))?;
    u32::try_from(t.nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(t.seconds, n))
        .ok_or_else(|| crate::errors::invalid(field, "is not a valid timestamp"))
}

pub fn timestamp_to_proto(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
