//! Server-side sessions: the browser holds a random id in an HttpOnly cookie;
//! the person's tokens never leave the gateway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aftersales_auth::Role;
use base64::Engine as _;
use ring::rand::SecureRandom as _;

pub const COOKIE: &str = "aftersales_session";
pub const LANGUAGE_COOKIE: &str = "aftersales_lang";
/// A session idle this long is forgotten (the refresh token lives longer at the
/// provider, but the browser must sign in again).
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most; beyond, the oldest idle ones go first.
const MAX_SESSIONS: usize = 200_000;

/// Who a session is, as the provider's token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The token's subject: a customer's id, or a staff member's username.
    pub subject: String,
    pub role: Role,
    /// The service centers a technician or center manager works at.
    pub centers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When the access token runs out.
    pub expires: Instant,
    pub person: Person,
    /// Every form of this session carries it.
    pub csrf: String,
    pub(crate) last_seen: Instant,
}

impl Session {
    pub fn new(
        access_token: String,
        refresh_token: Option<String>,
        lifetime: Duration,
        person: Person,
    ) -> Self {
        let now = Instant::now();
        Self {
            access_token,
            refresh_token,
            expires: now + lifetime,
            person,
            csrf: random_id(),
            last_seen: now,
        }
    }
}

/// A fresh unguessable id (256 bits).
pub fn random_id() -> String {
    let mut bytes = [0_u8; 32];
    // SystemRandom fails only without an OS source of randomness; the id is
    // then refused by `Sessions::get` (empty).
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Keeps `session`; its id for the cookie.
    pub fn insert(&self, session: Session) -> Option<String> {
        let id = random_id();
        if id.is_empty() {
            return None;
        }
        let mut sessions = self.by_id.lock().ok()?;
        if sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            sessions.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        }
        sessions.insert(id.clone(), session);
        Some(id)
    }

    /// The session `id` names, if it is alive; seen now.
    pub fn get(&self, id: &str) -> Option<Session> {
        if id.is_empty() {
            return None;
        }
        let mut sessions = self.by_id.lock().ok()?;
        let session = sessions.get_mut(id)?;
        if session.last_seen.elapsed() >= IDLE {
            sessions.remove(id);
            return None;
        }
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    pub fn replace(&self, id: &str, session: Session) {
        if let Ok(mut sessions) = self.by_id.lock() {
            sessions.insert(id.to_owned(), session);
        }
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        self.by_id.lock().ok()?.remove(id)
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends_when_removed() {
        let sessions = Sessions::default();
        let id = sessions
            .insert(Session::new(
                "at".into(),
                None,
                Duration::from_secs(60),
                Person {
                    subject: "c-1".into(),
                    role: Role::Customer,
                    centers: Vec::new(),
                },
            ))
            .unwrap_or_default();
        assert_eq!(id.len(), 43);
        assert_eq!(
            sessions.get(&id).map(|s| s.person.subject),
            Some("c-1".into())
        );
        assert!(sessions.get("guessed").is_none());
        assert!(sessions.get("").is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn cookies_are_read_by_name() {
        let header = Some("a=1; aftersales_session=xyz; b=2");
        assert_eq!(cookie(header, COOKIE), Some("xyz"));
        assert_eq!(cookie(header, "missing"), None);
        assert_eq!(cookie(None, COOKIE), None);
    }
}
