//! Cutting a principal off: [`Revocations`] and [`RevocationLayer`] (feature `revocation`).
//!
//! A token stays valid until its `exp`, and a live request is held open for up to 20 s
//! (long-poll) or 60 s (SSE), renewed by the client as long as it likes. When access changes
//! (a user removed from a project, a session logged out, a token leaked), the app calls
//! [`Revocations::revoke_subject`] (every token of that `sub`) or
//! [`Revocations::revoke_token`] (one `jti`), and the layer:
//!
//! - refuses that principal's next request with a 401 (`WWW-Authenticate: Bearer
//!   error="invalid_token", error_description="token revoked"`);
//! - answers a held long-poll that has no response head yet with that same 401 at once, and
//!   drops the request to Electric (which cancels it upstream);
//! - ends a response body already streaming, at once: an **SSE** stream (`text/event-stream`)
//!   ends cleanly after the frames already sent, and Electric's TypeScript client, seeing its
//!   live stream closed, reconnects and meets the 401, which reaches its `onError` (where a
//!   gatekeeper app fetches a new token, or stops); a **JSON** body (a long-poll or snapshot
//!   mid-way) ends with an error instead, so the connection is aborted rather than the client
//!   reading a truncated array as a complete one, and the client's retry meets the 401.
//!
//! The identity of a request is its [`JwtClaims`] (`sub`, `jti`),
//! as put in the extensions by [`JwtLayer`](crate::jwt) or the app's own authentication; a
//! request without claims passes untouched (authentication is another layer's job). Place this
//! layer after the one that authenticates and before the policy.
//!
//! A revocation wakes every held response once (each checks its own identity), so cutting off
//! is immediate whatever the number of held streams, and costs one check per held stream.
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_electric::claims::JwtClaims;
//! use tower_electric::revocation::Revocations;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let revocations = Revocations::new(); // cheap to clone: hand a clone to the app
//! let service = revocations.layer().layer(service_fn(|_request: Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"[]"))))
//! }));
//!
//! let request = || {
//!     let mut request = Request::get("/v1/shape?table=items&offset=-1").body(Full::default())?;
//!     let claims = JwtClaims::new(serde_json::json!({"sub": "alice", "jti": "t1"}))?;
//!     request.extensions_mut().insert(claims);
//!     Ok::<_, Box<dyn std::error::Error>>(request)
//! };
//! assert_eq!(service.clone().oneshot(request()?).await?.status(), StatusCode::OK);
//!
//! revocations.revoke_subject("alice");
//! assert_eq!(service.oneshot(request()?).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod body;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

pub use body::{ResponseBody, Revoked};

use crate::claims::JwtClaims;
use crate::rejection::Rejection;

/// How long past its `exp` a revoked token is remembered: longer than any clock skew a
/// verifier allows, after which the token is refused as expired anyway.
const REMEMBER_PAST_EXP_SECS: u64 = 10 * 60;

#[derive(Default)]
struct State {
    subjects: HashSet<String>,
    /// `jti` → the token's `exp` (when known), after which the entry may go.
    tokens: HashMap<String, Option<u64>>,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped on every revocation: held responses wait on it, then check their identity.
    changes: watch::Sender<u64>,
}

/// The app's handle on who is cut off: revoke a subject (`sub`) or a token (`jti`). Cheap to
/// clone; every clone and every [`RevocationLayer`] made from it share one set.
#[derive(Clone)]
pub struct Revocations {
    shared: Arc<Shared>,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (subjects, tokens) =
            self.with_state(|state| (state.subjects.len(), state.tokens.len()));
        f.debug_struct("Revocations")
            .field("subjects", &subjects)
            .field("tokens", &tokens)
            .finish()
    }
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

impl Revocations {
    /// Nobody revoked.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changes: watch::Sender::new(0),
            }),
        }
    }

    /// Revokes every token of `subject` (`sub`), now and until [`restore_subject`]: its next
    /// request is a 401 and its held responses end at once.
    ///
    /// [`restore_subject`]: Self::restore_subject
    pub fn revoke_subject(&self, subject: impl Into<String>) {
        let subject = subject.into();
        self.with_state(|state| state.subjects.insert(subject));
        self.notify();
    }

    /// Lets `subject` in again (tokens revoked by id stay revoked). Says whether it was revoked.
    pub fn restore_subject(&self, subject: &str) -> bool {
        self.with_state(|state| state.subjects.remove(subject))
    }

    /// Revokes one token by its id (`jti`), remembered until [`forget_token`].
    ///
    /// [`forget_token`]: Self::forget_token
    pub fn revoke_token(&self, token_id: impl Into<String>) {
        let token_id = token_id.into();
        self.with_state(|state| state.tokens.insert(token_id, None));
        self.notify();
    }

    /// Revokes one token by its id (`jti`), remembered until a while after `expires_at` (its
    /// `exp`, seconds since the Unix epoch), when it is refused as expired anyway; so the set
    /// does not grow without bound.
    pub fn revoke_token_until(&self, token_id: impl Into<String>, expires_at: u64) {
        let token_id = token_id.into();
        let now = unix_now();
        self.with_state(|state| {
            state.tokens.retain(|_, exp| {
                exp.is_none_or(|exp| exp.saturating_add(REMEMBER_PAST_EXP_SECS) > now)
            });
            state.tokens.insert(token_id, Some(expires_at));
        });
        self.notify();
    }

    /// Forgets a revoked token id. Says whether it was revoked.
    pub fn forget_token(&self, token_id: &str) -> bool {
        self.with_state(|state| state.tokens.remove(token_id).is_some())
    }

    /// Whether these claims are cut off (by `sub` or by `jti`).
    pub fn is_revoked(&self, claims: &JwtClaims) -> bool {
        self.with_state(|state| {
            claims
                .subject()
                .is_some_and(|subject| state.subjects.contains(subject))
                || claims
                    .token_id()
                    .is_some_and(|id| state.tokens.contains_key(id))
        })
    }

    /// The layer that enforces these revocations.
    pub fn layer(&self) -> RevocationLayer {
        RevocationLayer {
            revocations: self.clone(),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.shared.state.lock() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn notify(&self) {
        self.shared
            .changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Resolves once `claims` are revoked (never, if they are not). `changes` was subscribed
    /// before the last check, so no revocation in between is missed.
    fn revoked(
        &self,
        claims: JwtClaims,
        mut changes: watch::Receiver<u64>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let revocations = self.clone();
        async move {
            loop {
                if revocations.is_revoked(&claims) {
                    return;
                }
                if changes.changed().await.is_err() {
                    // Unreachable while `revocations` holds the sender; wait forever if not.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The refusal of a revoked principal's request.
fn revoked_rejection() -> Rejection {
    Rejection::unauthorized()
        .with_message("Unauthorized - access revoked")
        .with_field_error("authorization", "token revoked")
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer error=\"invalid_token\", error_description=\"token revoked\"",
            ),
        )
}

/// Layer that refuses revoked principals and ends their held responses; made by
/// [`Revocations::layer`]. See the [module docs](self).
#[derive(Debug, Clone)]
#[must_use]
pub struct RevocationLayer {
    revocations: Revocations,
}

impl<S> Layer<S> for RevocationLayer {
    type Service = Revocation<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Revocation {
            inner,
            revocations: self.revocations.clone(),
        }
    }
}

/// The service of [`RevocationLayer`].
#[derive(Clone)]
pub struct Revocation<S> {
    inner: S,
    revocations: Revocations,
}

impl<S> Revocation<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Revocation<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The response future of [`Revocation`]: the inner response, or a 401 as soon as the
/// principal is revoked while it waits.
pub type ResponseFuture<B, E> = crate::future::BoxedResponseFuture<ResponseBody<B>, E>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Revocation<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let revocations = self.revocations.clone();
        let claims = request.extensions().get::<JwtClaims>().cloned();
        // Subscribed before the check: a revocation from here on wakes what waits on it.
        let changes = revocations.shared.changes.subscribe();
        ResponseFuture {
            inner: Box::pin(async move {
                let Some(claims) = claims else {
                    let response = inner.call(request).await?;
                    return Ok(response.map(ResponseBody::untouched));
                };
                if revocations.is_revoked(&claims) {
                    tracing::info!("request of a revoked principal refused");
                    return Ok(revoked_rejection().into_response());
                }
                let waiting = revocations.revoked(claims.clone(), changes.clone());
                let response = tokio::select! {
                    biased;
                    () = waiting => {
                        // Dropping the inner future cancels the request upstream.
                        tracing::info!("held request of a revoked principal answered 401");
                        return Ok(revoked_rejection().into_response());
                    }
                    response = inner.call(request) => response?,
                };
                let sse = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .is_some_and(|value| value.starts_with("text/event-stream"));
                let cut = Box::pin(revocations.revoked(claims, changes));
                Ok(response.map(|body| ResponseBody::watched(body, cut, sse)))
            }),
        }
    }
}
