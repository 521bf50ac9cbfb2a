//! TLS for gRPC (rustls): a server's certificate and key, and the roots a
//! client trusts for an `https://` peer (the system's, plus a private CA).

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The server side: `cert` (a PEM chain) and its `key`, both or neither.
pub fn server(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<ServerTlsConfig>, String> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(ServerTlsConfig::new().identity(Identity::from_pem(
            read("AFTERSALES_TLS_CERT", cert)?,
            read("AFTERSALES_TLS_KEY", key)?,
        )))),
        (Some(_), None) | (None, Some(_)) => {
            Err("AFTERSALES_TLS_CERT and AFTERSALES_TLS_KEY go together".into())
        }
    }
}

/// An endpoint for `url`: over TLS for `https://`, trusting the system's roots
/// and `ca` if given; plain for `http://`.
pub fn endpoint(url: &str, ca: Option<&Path>) -> Result<Endpoint, String> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url}: {e}"))?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let mut tls = ClientTlsConfig::new().with_native_roots();
    if let Some(ca) = ca {
        tls = tls.ca_certificate(Certificate::from_pem(read("AFTERSALES_TLS_CA", ca)?));
    }
    endpoint.tls_config(tls).map_err(|e| format!("{url}: {e}"))
}
