//! Verified token claims as a principal: what an authentication layer puts in the request
//! extensions and what policies and the revocation layer read.
//!
//! This module is neutral ground: [`JwtLayer`](crate::jwt) (feature `jwt`) writes
//! [`JwtClaims`], [`GatekeeperPolicy`](crate::policy::GatekeeperPolicy) and
//! `RevocationLayer` (feature `revocation`) read them, and none of those imports another. An
//! app that verifies its tokens some other way can insert [`JwtClaims`] itself.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The claims of a verified token, in the request extensions.
///
/// Cheap to clone (shared). `Debug` lists the claim names, never their values: claims are
/// personal data (and a shape claim is the app's authorization decision), not log material.
///
/// ```
/// use tower_electric::claims::JwtClaims;
///
/// let claims = JwtClaims::new(serde_json::json!({"sub": "u1", "jti": "t1", "org": "acme"}))?;
/// assert_eq!(claims.subject(), Some("u1"));
/// assert_eq!(claims.token_id(), Some("t1"));
/// assert_eq!(claims.get("org"), Some(&serde_json::json!("acme")));
/// assert_eq!(format!("{claims:?}"), r#"JwtClaims { names: ["jti", "org", "sub"] }"#);
/// # Ok::<(), tower_electric::claims::NotAnObject>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JwtClaims {
    claims: Arc<Map<String, Value>>,
}

/// The claims given to [`JwtClaims::new`] were not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token claims must be a JSON object")]
pub struct NotAnObject;

impl JwtClaims {
    /// Claims from a JSON object (a token's payload, already verified).
    pub fn new(claims: Value) -> Result<Self, NotAnObject> {
        match claims {
            Value::Object(map) => Ok(Self::from_map(map)),
            _ => Err(NotAnObject),
        }
    }

    /// Claims from a JSON map (a token's payload, already verified).
    pub fn from_map(claims: Map<String, Value>) -> Self {
        Self {
            claims: Arc::new(claims),
        }
    }

    /// One claim, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// `sub`, when it is a string: who the token is about.
    pub fn subject(&self) -> Option<&str> {
        self.string("sub")
    }

    /// `jti`, when it is a string: the token's own id.
    pub fn token_id(&self) -> Option<&str> {
        self.string("jti")
    }

    /// `iss`, when it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.string("iss")
    }

    /// `exp` in seconds since the Unix epoch, when it is a non-negative integer.
    pub fn expires_at(&self) -> Option<u64> {
        self.get("exp").and_then(Value::as_u64)
    }

    /// The claim names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.claims.keys().map(String::as_str)
    }

    /// Every claim, as a JSON map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.claims
    }

    fn string(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }
}

impl fmt::Debug for JwtClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.names().collect();
        names.sort_unstable();
        f.debug_struct("JwtClaims").field("names", &names).finish()
    }
}
