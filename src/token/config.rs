//! What each mode is configured with: the server-held secret to inject, the caller tokens to
//! require.

use std::fmt;

use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::load::{secret_from_env, secrets_from_env, TokenError};
use crate::secret::SecretString;

/// The query key that carries Electric's secret, and the caller token in require mode.
pub(crate) const SECRET_KEY: &str = "secret";
/// Electric's legacy name for [`SECRET_KEY`].
const LEGACY_SECRET_KEY: &str = "api_secret";
/// Electric Cloud's source identifier, sent beside the secret
/// (`https://api.electric-sql.cloud/v1/shape?table=items&offset=-1&source_id=…&secret=…`).
pub(crate) const SOURCE_ID_KEY: &str = "source_id";
/// The name Electric Cloud's first proxy examples gave the source's secret. Never injected;
/// removed so that no Cloud version that still reads it gets a client-chosen one.
const SOURCE_SECRET_KEY: &str = "source_secret";

/// Whether a decoded query key is, or could be read by anything as, one of Electric's
/// credential keys. Matches the bracket forms Plug would decode into a list or map
/// (`secret[]`, `secret[x]`), any ASCII case (Electric's keys are case-sensitive, so `SECRET`
/// is an unknown key to it; removing it is harmless and keeps a case-folding hop in between
/// from turning it into a credential) and surrounding spaces.
///
/// `with_source_id` also matches `source_id`: inject mode removes it whether or not it
/// injects one, because the source is the server's to name (a client-chosen `source_id` next
/// to the server's secret would pick which source that secret is presented for).
pub(crate) fn is_credential_key(key: &str, with_source_id: bool) -> bool {
    // A byte search, not `split`: this runs for every pair of every query.
    let base = match key.bytes().position(|byte| byte == b'[') {
        Some(at) => key.get(..at).unwrap_or(key),
        None => key,
    }
    .trim();
    base.eq_ignore_ascii_case(SECRET_KEY)
        || base.eq_ignore_ascii_case(LEGACY_SECRET_KEY)
        || base.eq_ignore_ascii_case(SOURCE_SECRET_KEY)
        || (with_source_id && base.eq_ignore_ascii_case(SOURCE_ID_KEY))
}

/// Inject mode: the server-held secret added to every upstream query (and Electric Cloud's
/// `source_id` beside it), after every client-supplied copy was removed.
///
/// For Electric Cloud, the secret is the source's secret and
/// [`with_source_id`](Self::with_source_id) names the source; the upstream query then ends in
/// `secret=<secret>&source_id=<source id>`, each percent-encoded:
///
/// ```
/// use tower_electric::token::InjectSecret;
/// use tower_electric::SecretString;
///
/// // In a real gateway: InjectSecret::from_env("ELECTRIC_SECRET")?
/// //     .with_source_id(std::env::var("ELECTRIC_SOURCE_ID")?)
/// let cloud = InjectSecret::new(SecretString::new("source secret"))?
///     .with_source_id("8ea4e5fb-9217-4ca6-80b7-0a97581c4c10");
/// assert!(!format!("{cloud:?}").contains("source secret"));
/// # Ok::<(), tower_electric::token::TokenError>(())
/// ```
///
/// `Debug` shows whether a `source_id` is set and its value (an identifier, not a secret),
/// never the secret.
#[derive(Clone)]
pub struct InjectSecret {
    pub(crate) secret: SecretString,
    pub(crate) source_id: Option<String>,
}

impl InjectSecret {
    /// Injects `secret` as Electric's `secret` query parameter. An empty secret is refused.
    pub fn new(secret: SecretString) -> Result<Self, TokenError> {
        if secret.is_empty() {
            return Err(TokenError::EmptySecret);
        }
        Ok(Self {
            secret,
            source_id: None,
        })
    }

    /// Injects the secret held in the environment variable `name` (usually `ELECTRIC_SECRET`).
    pub fn from_env(name: &str) -> Result<Self, TokenError> {
        Self::new(secret_from_env(name)?)
    }

    /// For Electric Cloud: also injects `source_id` (the source's identifier, shown on the
    /// Cloud dashboard beside its secret). A client-supplied `source_id`, in every spelling, is
    /// removed in inject mode with or without this.
    #[must_use]
    pub fn with_source_id(mut self, source_id: impl Into<String>) -> Self {
        self.source_id = Some(source_id.into());
        self
    }
}

impl fmt::Debug for InjectSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectSecret")
            .field("secret", &self.secret)
            .field("source_id", &self.source_id)
            .finish()
    }
}

/// Require mode: the tokens a caller may present, where it may present them, and how a
/// refusal is worded.
///
/// Only SHA-256 digests of the tokens are kept. A presented token is hashed and compared with
/// every digest in constant time ([`subtle`]), all of them, whatever matched: the time taken
/// depends on the presented token's length and the number of tokens, never on how much of
/// which token was right, nor on the configured tokens' lengths.
///
/// Defaults: `Authorization: Bearer` accepted, no custom header, the `secret` query param not
/// accepted, `OPTIONS` passed through unauthenticated, no realm.
#[derive(Clone)]
pub struct RequireToken {
    digests: Vec<[u8; 32]>,
    pub(crate) bearer: bool,
    pub(crate) header: Option<HeaderName>,
    pub(crate) query_param: bool,
    pub(crate) allow_preflight: bool,
    realm: Option<String>,
}

impl RequireToken {
    /// Requires one of `tokens`; several are valid at once, for rotation. An empty list, or an
    /// empty token in it, is refused.
    pub fn new<I>(tokens: I) -> Result<Self, TokenError>
    where
        I: IntoIterator,
        I::Item: Into<SecretString>,
    {
        let mut digests = Vec::new();
        for token in tokens {
            let token = token.into();
            if token.is_empty() {
                return Err(TokenError::EmptySecret);
            }
            digests.push(digest(token.expose().as_bytes()));
        }
        if digests.is_empty() {
            return Err(TokenError::NoTokens);
        }
        Ok(Self {
            digests,
            bearer: true,
            header: None,
            query_param: false,
            allow_preflight: true,
            realm: None,
        })
    }

    /// Requires one of the comma-separated tokens in the environment variable `name` (for
    /// example `GATEWAY_REQUIRE_TOKEN=new-token,old-token`).
    pub fn from_env(name: &str) -> Result<Self, TokenError> {
        Self::new(secrets_from_env(name)?)
    }

    /// Whether `Authorization: Bearer <token>` is accepted (default: yes). When it is, the
    /// `Authorization` header is removed before the request goes on. Turn it off when
    /// `Authorization` carries something else (the app's own user credentials).
    #[must_use]
    pub fn bearer(mut self, accept: bool) -> Self {
        self.bearer = accept;
        self
    }

    /// Also accepts the token as the whole value of this header (for example
    /// `electric-secret`); the header is removed before the request goes on.
    #[must_use]
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// Whether the `secret` query parameter is accepted (default: no; a URL ends up in logs).
    /// When it is, every credential key is removed from the query before the request goes on.
    #[must_use]
    pub fn query_param(mut self, accept: bool) -> Self {
        self.query_param = accept;
        self
    }

    /// Whether `OPTIONS` requests (CORS preflights, which browsers send without credentials,
    /// and which Electric answers without authentication) pass unauthenticated (default: yes).
    #[must_use]
    pub fn allow_preflight(mut self, allow: bool) -> Self {
        self.allow_preflight = allow;
        self
    }

    /// Names a realm in the `WWW-Authenticate` challenge. Printable ASCII without `"` or `\`.
    pub fn realm(mut self, realm: impl Into<String>) -> Result<Self, TokenError> {
        let realm = realm.into();
        let printable = |byte: u8| (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\';
        if !realm.bytes().all(printable) {
            return Err(TokenError::InvalidRealm);
        }
        self.realm = Some(realm);
        Ok(self)
    }

    /// Whether `presented` is one of the tokens. Every digest is compared, in constant time.
    pub(crate) fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        let mut matched = Choice::from(0);
        for expected in &self.digests {
            matched |= expected.as_slice().ct_eq(presented.as_slice());
        }
        matched.into()
    }

    /// The `WWW-Authenticate` challenge, with an RFC 6750 error code when there is one.
    pub(crate) fn challenge(&self, error: Option<&str>) -> HeaderValue {
        let params: Vec<String> = self
            .realm
            .iter()
            .map(|realm| format!("realm=\"{realm}\""))
            .chain(error.map(|error| format!("error=\"{error}\"")))
            .collect();
        if params.is_empty() {
            return HeaderValue::from_static("Bearer");
        }
        HeaderValue::from_str(&format!("Bearer {}", params.join(", ")))
            .unwrap_or(HeaderValue::from_static("Bearer"))
    }
}

impl fmt::Debug for RequireToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireToken")
            .field("tokens", &self.digests.len())
            .field("bearer", &self.bearer)
            .field("header", &self.header)
            .field("query_param", &self.query_param)
            .field("allow_preflight", &self.allow_preflight)
            .field("realm", &self.realm)
            .finish()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys_in_every_spelling() {
        for key in [
            "secret",
            "api_secret",
            "secret[]",
            "secret[x]",
            "api_secret[0][1]",
            "SECRET",
            "Api_Secret",
            " secret",
            "source_secret",
            "Source_Secret[]",
        ] {
            assert!(is_credential_key(key, false), "{key}");
        }
        for key in ["secrets", "my_secret", "table", "source_id", "xsecret[]"] {
            assert!(!is_credential_key(key, false), "{key}");
        }
        assert!(is_credential_key("source_id", true));
        assert!(is_credential_key("SOURCE_ID[]", true));
    }

    #[test]
    fn every_rotated_token_is_accepted_and_nothing_else() {
        let require = RequireToken::new(["token-one", "token-two"]).unwrap();
        assert!(require.accepts(b"token-one"));
        assert!(require.accepts(b"token-two"));
        for wrong in [
            &b"token-six"[..],
            b"token-",
            b"",
            b"token-one ",
            b"TOKEN-ONE",
        ] {
            assert!(!require.accepts(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn empty_token_lists_and_empty_tokens_are_refused() {
        assert!(matches!(
            RequireToken::new(Vec::<SecretString>::new()),
            Err(TokenError::NoTokens)
        ));
        assert!(matches!(
            RequireToken::new(["ok", ""]),
            Err(TokenError::EmptySecret)
        ));
        assert!(matches!(
            InjectSecret::new(SecretString::new("")),
            Err(TokenError::EmptySecret)
        ));
    }

    #[test]
    fn challenge_carries_realm_and_error_code() {
        let require = RequireToken::new(["t"]).unwrap();
        assert_eq!(require.challenge(None), "Bearer");
        let require = require.realm("electric gateway").unwrap();
        assert_eq!(
            require.challenge(Some("invalid_token")),
            "Bearer realm=\"electric gateway\", error=\"invalid_token\""
        );
        assert!(matches!(
            RequireToken::new(["t"]).unwrap().realm("a\"b"),
            Err(TokenError::InvalidRealm)
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        let inject = InjectSecret::new(SecretString::new("inject-secret-value"))
            .unwrap()
            .with_source_id("source-1");
        let require = RequireToken::new(["caller-token-value"])
            .unwrap()
            .header(HeaderName::from_static("electric-secret"));
        let shown = format!("{inject:?} {require:?} {inject:#?} {require:#?}");
        assert!(!shown.contains("inject-secret-value"), "{shown}");
        assert!(!shown.contains("caller-token-value"), "{shown}");
        assert!(shown.contains("source-1"), "{shown}");
    }
}
