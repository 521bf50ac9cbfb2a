//! Who is calling, and what they may do.
//!
//! - [`principal`]: the roles and the [`Principal`] a verified token names.
//! - [`policy`]: the one table of every RPC, the roles that may call it and the
//!   object each role must own or be assigned to (`policy.toml`).
//! - [`verify`]: bearer JWTs checked against an OpenID Connect issuer's published
//!   keys (found by discovery, cached, refetched for an unknown `kid`), with an
//!   algorithm allow-list and `iss`, `aud`, `exp` and `nbf` checked.
//! - [`client`]: a service's own token (client credentials), kept fresh.
//! - [`issuer`]: an issuer of our own: a signing key, its JWKS and discovery
//!   documents served over HTTP, and tokens signed with it.

pub mod client;
pub mod issuer;
pub mod policy;
pub mod principal;
pub mod verify;

pub use client::{ClientCredentials, ServiceToken};
pub use policy::{Object, Policy};
pub use principal::{Principal, Role};
pub use verify::{AuthError, Verifier, VerifierSettings};
