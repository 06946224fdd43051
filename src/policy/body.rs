//! The request body the policy layer forwards.

/// The body of the upstream request: the client's own for `OPTIONS`, passed through untouched
/// ([`ResponseBody::inner`](crate::body::ResponseBody::inner)); otherwise one the layer wrote
/// ([`ResponseBody::full`](crate::body::ResponseBody::full)): empty for `GET`/`HEAD` (a body
/// there was never checked, so it does not go on), the re-serialised subset for `POST`.
///
/// It is the crate's one either-body, [`crate::body::ResponseBody`], under the name that says
/// which way it flows here.
pub type RequestBody<B> = crate::body::ResponseBody<B>;
