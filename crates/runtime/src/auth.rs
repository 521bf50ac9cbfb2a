//! Every gRPC call authenticated and checked against the policy table before it
//! reaches a service: the bearer token verified, the caller's role allowed for the
//! RPC, and the [`Principal`] handed to the handler in the request's extensions.
//! Health checks need no token. Without an issuer (a development machine, stated
//! by `--allow-unauthenticated`) calls pass unchecked.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aftersales_auth::{AuthError, Object, Policy, Principal, Verifier};

/// Who may call what, and how callers are recognised.
#[derive(Debug, Clone)]
pub struct Authorization {
    verifier: Option<Arc<Verifier>>,
    policy: Arc<Policy>,
}

/// What the policy lets the caller touch on this call, beside its [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed(pub Object);

impl Authorization {
    /// Tokens verified by `verifier`, calls checked against `policy`.
    pub fn new(verifier: Verifier, policy: Policy) -> Self {
        Self {
            verifier: Some(Arc::new(verifier)),
            policy: Arc::new(policy),
        }
    }

    /// No authentication: a development machine only.
    pub fn off(policy: Policy) -> Self {
        Self {
            verifier: None,
            policy: Arc::new(policy),
        }
    }

    pub fn verifier(&self) -> Option<&Arc<Verifier>> {
        self.verifier.as_ref()
    }

    /// The caller of `path` (`/package.Service/Method`) with `authorization`, or
    /// why not.
    pub async fn check(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<(Principal, Object)>, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let method = path.trim_start_matches('/');
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty());
        let token = match token {
            Some(token) => token,
            // Published information: an anonymous caller gets what everyone may see.
            None if self.policy.is_public(method) => return Ok(None),
            None => {
                return Err(AuthError::Unauthenticated(
                    "a bearer token is required".into(),
                ));
            }
        };
        let principal = verifier.verify(token).await?;
        let object = self.policy.authorize(method, &principal)?;
        Ok(Some((principal, object)))
    }
}

/// Who owns an object, as far as the policy's objects go.
#[derive(Debug, Default, Clone, Copy)]
pub struct Owner<'a> {
    /// The customer it belongs to.
    pub customer: Option<&'a str>,
    /// The service center it is at.
    pub center: Option<&'a str>,
}

/// A request's caller and what the policy lets it touch, kept past `into_inner`.
#[derive(Debug, Clone, Default)]
pub struct Caller(Option<(Principal, Object)>);

impl Caller {
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        let extensions = request.extensions();
        Self(
            extensions
                .get::<Principal>()
                .cloned()
                .zip(extensions.get::<Allowed>().map(|a| a.0)),
        )
    }

    /// Who calls, when authentication is on.
    pub fn principal(&self) -> Option<&Principal> {
        self.0.as_ref().map(|(principal, _)| principal)
    }

    /// Whether the caller is a customer acting for themself (what they say is
    /// theirs to declare, not a checked fact). Without authentication, no.
    pub fn is_customer(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|(principal, _)| principal.role == aftersales_auth::Role::Customer)
    }

    /// Whether the caller's access depends on who owns the object, so the
    /// handler must look it up first.
    pub fn needs_owner(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|(_, object)| *object != Object::Any)
    }

    /// Whether the caller may touch an object owned by `owner`. `false` is
    /// answered exactly as if the object did not exist, so ids cannot be probed.
    /// Without authentication everything may be touched.
    pub fn may_touch(&self, owner: Owner<'_>) -> bool {
        let Some((principal, object)) = &self.0 else {
            return true;
        };
        match object {
            Object::Any => true,
            // The depot works on every center's orders and on mail-ins, which
            // have no center; a center's staff on that center's orders.
            Object::OwnCenter => principal.centers.iter().any(|mine| {
                mine == ALL_CENTERS || owner.center.is_some_and(|center| mine == center)
            }),
            // Teams are the support service's data: it checks them itself.
            Object::OwnTeam => false,
            Object::OwnCustomer
            | Object::OwnDevice
            | Object::OwnOrder
            | Object::OwnShipment
            | Object::OwnNotification => owner
                .customer
                .is_some_and(|customer| principal.customer() == Some(customer)),
        }
    }
}

/// In `aftersales_centers`, every center: staff of the central repair depot, who
/// take mail-in orders.
pub const ALL_CENTERS: &str = "*";

/// The gRPC status for a refusal.
pub fn status(error: &AuthError) -> tonic::Status {
    match error {
        AuthError::Unauthenticated(why) => tonic::Status::unauthenticated(why.clone()),
        AuthError::PermissionDenied(why) => tonic::Status::permission_denied(why.clone()),
        AuthError::Unavailable(why) => {
            tracing::warn!(%why, "tokens cannot be verified");
            tonic::Status::unavailable("the identity provider cannot be reached")
        }
    }
}

impl<S> tower_layer::Layer<S> for Authorization {
    type Service = Authorized<S>;

    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized {
            inner,
            authorization: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Authorized<S> {
    inner: S,
    authorization: Authorization,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for Authorized<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    R: Default + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with("/grpc.health.v1.Health/")
            || self.authorization.verifier.is_none()
        {
            return Box::pin(self.inner.call(request));
        }
        // The ready service goes with the call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authorization = self.authorization.clone();
        Box::pin(async move {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match authorization.check(request.uri().path(), header).await {
                Ok(Some((principal, object))) => {
                    request.extensions_mut().insert(principal);
                    request.extensions_mut().insert(Allowed(object));
                    inner.call(request).await
                }
                Ok(None) => inner.call(request).await,
                Err(error) => Ok(status(&error).into_http()),
            }
        })
    }
}
