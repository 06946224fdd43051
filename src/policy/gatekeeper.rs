//! [`GatekeeperPolicy`]: Electric's gatekeeper pattern, a shape named by a token's claim.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use http::request::Parts;
use serde_json::Value;

use crate::claims::JwtClaims;
use crate::protocol::{
    parse_column_list, Identifier, Replica, ShapeRequest, SqlError, SqlExpr, SqlLimits, TableName,
    POLICY_MAX_DEPTH,
};
use crate::rejection::Rejection;

use super::decision::{DecisionFuture, Policy, RowFilter, ShapeDefinition};

/// The claim Electric's gatekeeper example signs the shape into.
pub const DEFAULT_SHAPE_CLAIM: &str = "shape";

/// How many parsed claim `where`s are kept (a token is used for many requests).
const WHERE_MEMO_CAPACITY: usize = 256;

/// The limits on the claim's own where: the app's text, so those of a row filter.
const CLAIM_SQL_LIMITS: SqlLimits = SqlLimits {
    max_len: 64 * 1024,
    max_depth: POLICY_MAX_DEPTH,
};

/// A [`Policy`] for Electric's gatekeeper pattern: an app endpoint checks who may see which
/// shape, once, and hands out a short-lived token whose claim names that shape; this policy
/// then lets a request through only when it asks for **exactly** that shape, and sends the
/// claim's shape upstream.
///
/// The claim (default [`DEFAULT_SHAPE_CLAIM`], `shape`) is laid out as Electric's gatekeeper
/// example signs it:
///
/// ```json
/// {"shape": {"namespace": null, "table": "items", "where": "owner = $1",
///            "params": ["u1"], "columns": ["id", "title"]}}
/// ```
///
/// `table` is required (`namespace`, when not null, is its schema; without one `table` may be
/// `schema.name`); `where`, `params` (a list, or an object keyed `"1".."n"`), `columns` (a
/// list, or Electric's comma-separated text) and `replica` are optional. The request is
/// compared on the parsed, normalised definition, never on strings:
/// - `table` as a normalised [`TableName`] (`items`, `public.items` and `"public"."items"` are
///   one table);
/// - `columns` as a set of normalised identifiers (order and quoting do not matter; a missing,
///   extra or other column does);
/// - `where` as a parsed [`SqlExpr`] tree (spacing and keyword case do not matter; another
///   operator, operand or constant does), absent only where the claim's is;
/// - `params` by value, in order;
/// - `replica`: the client's must be absent or equal to the claim's, and absent or `default`
///   when the claim names none (`full` is another Electric shape).
///
/// A difference is a 403 naming the field that differs (`table`, `columns`, `where`,
/// `params`, `replica`), never the claim's values; a request without [`JwtClaims`] is a 401,
/// and a token without a usable shape claim a 403. What goes upstream is the claim's shape, rebuilt by
/// [`ShapeParamPolicyLayer`](super::ShapeParamPolicyLayer) from the claim's text (its where
/// is the server's text, so it may use any column and construct a row filter may), plus the
/// client's protocol params (offset, handle, live, ...). Responses are marked private
/// ([`CacheSafety`](super::CacheSafety)): a shared cache in front must not answer a request
/// that carries no token.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_electric::claims::JwtClaims;
/// use tower_electric::policy::{GatekeeperPolicy, RequestBody, ShapeParamPolicyLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let electric = service_fn(|request: Request<RequestBody<Full<Bytes>>>| async move {
///     // Shows what it was asked.
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(request.uri().to_string()))))
/// });
/// let service = ShapeParamPolicyLayer::new(GatekeeperPolicy::new()).layer(electric);
///
/// // What a JwtLayer puts in the extensions once the token is verified.
/// let claims = JwtClaims::new(serde_json::json!({
///     "sub": "u1",
///     "shape": {"table": "items", "where": "owner = $1", "params": ["u1"], "columns": ["id", "title"]},
/// }))?;
///
/// // The same shape, written differently: accepted, and the claim's shape goes upstream.
/// let mut request = Request::get(
///     "/v1/shape?table=public.items&offset=-1&where=owner%3D%241&params[1]=u1&columns=title,id",
/// ).body(Full::default())?;
/// request.extensions_mut().insert(claims.clone());
/// let response = service.clone().oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::OK);
/// let asked = response.into_body().collect().await?.to_bytes();
/// assert_eq!(
///     asked,
///     "/v1/shape?columns=id%2Ctitle&offset=-1&params[1]=u1&table=public.items&where=owner%20%3D%20%241"
/// );
///
/// // Another shape with the same token (everyone else's rows): refused, naming what differs.
/// let mut request = Request::get(
///     "/v1/shape?table=items&offset=-1&where=owner+%3C%3E+%241&params[1]=u1&columns=id,title",
/// )
///     .body(Full::default())?;
/// request.extensions_mut().insert(claims);
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
/// let body = response.into_body().collect().await?.to_bytes();
/// assert_eq!(body, r#"{"errors":{"where":["differs from the token's shape"]},"message":"The request is not the token's shape"}"#);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct GatekeeperPolicy {
    claim: Arc<str>,
    limits: SqlLimits,
    wheres: Arc<Mutex<HashMap<String, Arc<ClaimWhere>>>>,
}

impl fmt::Debug for GatekeeperPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatekeeperPolicy")
            .field("claim", &self.claim)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for GatekeeperPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// The claim's where, parsed once: as a row filter (sent upstream) and as an expression (what
/// the client's is compared with).
struct ClaimWhere {
    filter: RowFilter,
    expr: SqlExpr,
}

/// The shape a claim names.
struct ClaimShape {
    table: TableName,
    columns: Option<Vec<Identifier>>,
    where_clause: Option<(String, Arc<ClaimWhere>)>,
    params: Vec<String>,
    replica: Option<Replica>,
}

impl GatekeeperPolicy {
    /// Reads the shape from the `shape` claim.
    pub fn new() -> Self {
        Self {
            claim: DEFAULT_SHAPE_CLAIM.into(),
            limits: SqlLimits::default(),
            wheres: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Reads the shape from another claim.
    pub fn claim(mut self, name: impl Into<String>) -> Self {
        self.claim = name.into().into();
        self
    }

    /// The limits on the client's `where` text, which is parsed to be compared (default
    /// [`SqlLimits::default`]).
    pub fn sql_limits(mut self, limits: SqlLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The decision, synchronously: what [`Policy::decide`] answers.
    pub fn decide_now(
        &self,
        parts: &Parts,
        request: &ShapeRequest,
    ) -> Result<ShapeDefinition, Rejection> {
        let Some(claims) = parts.extensions.get::<JwtClaims>() else {
            return Err(Rejection::unauthorized());
        };
        let shape = claims
            .get(&self.claim)
            .ok_or(ClaimError("the token names no shape"))
            .and_then(|claim| self.read_claim(claim))
            .map_err(|ClaimError(reason)| {
                tracing::warn!(
                    reason,
                    "gatekeeper token refused: its shape claim is unusable"
                );
                Rejection::forbidden().with_message("The token does not name a usable shape")
            })?;
        self.compare(&shape, request)?;

        let mut definition = ShapeDefinition::new(shape.table).client_shape_matched();
        if let Some(columns) = shape.columns {
            definition = definition.columns(columns);
        }
        if let Some((_, parsed)) = &shape.where_clause {
            definition = definition.row_filter(&parsed.filter, shape.params);
        }
        if let Some(replica) = shape.replica {
            definition = definition.replica(replica);
        }
        Ok(definition)
    }

    /// Refuses a request that asks for anything but the claim's shape, naming each field that
    /// differs.
    fn compare(&self, shape: &ClaimShape, request: &ShapeRequest) -> Result<(), Rejection> {
        let mut differs: Vec<&'static str> = Vec::new();
        if request.table.as_ref() != Some(&shape.table) {
            differs.push("table");
        }
        if column_set(request.columns.as_deref()) != column_set(shape.columns.as_deref()) {
            differs.push("columns");
        }
        let same_where = match (&request.where_clause, &shape.where_clause) {
            (None, None) => true,
            (Some(asked), Some((text, parsed))) => {
                // Equal texts are equal trees; anything else is parsed and compared as a tree.
                asked == text
                    || match SqlExpr::parse(asked, self.limits) {
                        Ok(expr) => expr == parsed.expr,
                        Err(error) => return Err(malformed_where(&error)),
                    }
            }
            _ => false,
        };
        if !same_where {
            differs.push("where");
        }
        if request.params != shape.params {
            differs.push("params");
        }
        // `replica=full` is another Electric shape of the same rows: without a replica in the
        // claim only Electric's default (absent or `default`) is the signed shape; with one,
        // the client may leave it out or ask for that very mode.
        let same_replica = match (request.replica, shape.replica) {
            (None, _) => true,
            (Some(asked), None) => asked == Replica::Default,
            (Some(asked), Some(granted)) => asked == granted,
        };
        if !same_replica {
            differs.push("replica");
        }
        if differs.is_empty() {
            return Ok(());
        }
        tracing::info!(?differs, "gatekeeper: the request is not the token's shape");
        Err(differs.into_iter().fold(
            Rejection::forbidden().with_message("The request is not the token's shape"),
            |rejection, field| rejection.with_field_error(field, "differs from the token's shape"),
        ))
    }

    fn read_claim(&self, claim: &Value) -> Result<ClaimShape, ClaimError> {
        let Value::Object(shape) = claim else {
            return Err(ClaimError("the shape claim is not an object"));
        };
        let text = |name: &str| match shape.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(ClaimError("a shape field is not a string")),
        };
        let table = text("table")?.ok_or(ClaimError("the shape names no table"))?;
        let table = match text("namespace")? {
            Some(schema) => TableName::new(
                Identifier::parse(schema).map_err(|_| ClaimError("bad namespace"))?,
                Identifier::parse(table).map_err(|_| ClaimError("bad table"))?,
            ),
            None => TableName::parse(table).map_err(|_| ClaimError("bad table"))?,
        };
        let columns = match shape.get("columns") {
            None | Some(Value::Null) => None,
            Some(Value::String(list)) => {
                Some(parse_column_list(list).map_err(|_| ClaimError("bad columns"))?)
            }
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|column| {
                        column
                            .as_str()
                            .and_then(|name| Identifier::parse(name).ok())
                            .ok_or(ClaimError("bad columns"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(ClaimError("bad columns")),
        };
        let params = claim_params(shape.get("params"))?;
        let where_clause = match text("where")? {
            None => None,
            Some(text) => Some((text.to_owned(), self.parse_where(text)?)),
        };
        let param_count = where_clause
            .as_ref()
            .map_or(0, |(_, parsed)| parsed.filter.param_count());
        if param_count != params.len() {
            return Err(ClaimError("the shape's params do not match its where"));
        }
        let replica = match text("replica")? {
            None => None,
            Some("default") => Some(Replica::Default),
            Some("full") => Some(Replica::Full),
            Some(_) => return Err(ClaimError("bad replica")),
        };
        Ok(ClaimShape {
            table,
            columns,
            where_clause,
            params,
            replica,
        })
    }

    fn parse_where(&self, text: &str) -> Result<Arc<ClaimWhere>, ClaimError> {
        let mut memo = match self.wheres.lock() {
            Ok(memo) => memo,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(parsed) = memo.get(text) {
            return Ok(Arc::clone(parsed));
        }
        let filter =
            RowFilter::parse(text).map_err(|_| ClaimError("the shape's where does not parse"))?;
        let expr = SqlExpr::parse(text, CLAIM_SQL_LIMITS)
            .map_err(|_| ClaimError("the shape's where does not parse"))?;
        let parsed = Arc::new(ClaimWhere { filter, expr });
        if memo.len() >= WHERE_MEMO_CAPACITY {
            memo.clear();
        }
        memo.insert(text.to_owned(), Arc::clone(&parsed));
        Ok(parsed)
    }
}

impl Policy for GatekeeperPolicy {
    fn decide<'a>(&'a self, parts: &'a Parts, request: &'a ShapeRequest) -> DecisionFuture<'a> {
        Box::pin(std::future::ready(self.decide_now(parts, request)))
    }
}

/// Why a shape claim could not be used; logged, never sent.
#[derive(Debug)]
struct ClaimError(&'static str);

/// `params` as a list of values, or an object keyed `"1".."n"`; strings, numbers and booleans
/// as Postgres text.
fn claim_params(params: Option<&Value>) -> Result<Vec<String>, ClaimError> {
    let value = |value: &Value| match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(ClaimError("a param is not a string, number or boolean")),
    };
    match params {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(value).collect(),
        Some(Value::Object(map)) => (1..=map.len())
            .map(|index| {
                map.get(&index.to_string())
                    .ok_or(ClaimError("params are not keyed 1..n"))
                    .and_then(value)
            })
            .collect(),
        Some(_) => Err(ClaimError("bad params")),
    }
}

/// Columns as a set: order and repeats do not change which columns sync.
fn column_set(columns: Option<&[Identifier]>) -> Option<BTreeSet<&Identifier>> {
    columns.map(|columns| columns.iter().collect())
}

fn malformed_where(error: &SqlError) -> Rejection {
    Rejection::invalid_request().with_field_error("where", error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(claim: Value) -> Result<ClaimShape, &'static str> {
        GatekeeperPolicy::new()
            .read_claim(&claim)
            .map_err(|ClaimError(reason)| reason)
    }

    fn request(query: &str) -> ShapeRequest {
        ShapeRequest::parse(query).unwrap()
    }

    #[test]
    fn params_are_a_list_or_an_object_keyed_one_to_n() {
        assert_eq!(
            claim_params(Some(&json!(["a", 2, true]))).unwrap(),
            ["a", "2", "true"]
        );
        assert_eq!(
            claim_params(Some(&json!({"2": "b", "1": "a"}))).unwrap(),
            ["a", "b"]
        );
        assert!(claim_params(Some(&json!({"1": "a", "3": "c"}))).is_err());
        assert!(claim_params(Some(&json!([["nested"]]))).is_err());
        assert!(claim_params(Some(&json!([null]))).is_err());
        assert!(claim_params(None).unwrap().is_empty());
    }

    #[test]
    fn the_table_is_normalised_from_namespace_and_table() {
        let items = TableName::parse("public.items").unwrap();
        assert_eq!(shape(json!({"table": "Items"})).unwrap().table, items);
        assert_eq!(
            shape(json!({"table": "public.items"})).unwrap().table,
            items
        );
        assert_eq!(
            shape(json!({"namespace": "public", "table": "items"}))
                .unwrap()
                .table,
            items
        );
        let quoted = shape(json!({"table": "\"Items\""})).unwrap().table;
        assert_ne!(quoted, items);
        assert!(shape(json!({"table": "a.b.c"})).is_err());
        assert!(shape(json!({"namespace": "x", "table": "a.b"})).is_err());
    }

    #[test]
    fn a_claim_whose_params_do_not_fit_its_where_is_unusable() {
        assert!(shape(json!({"table": "items", "where": "a = $1"})).is_err());
        assert!(shape(json!({"table": "items", "where": "a = 1", "params": ["x"]})).is_err());
        assert!(shape(json!({"table": "items", "params": ["x"]})).is_err());
        assert!(shape(json!({"table": "items", "where": "a = $1", "params": ["x"]})).is_ok());
        assert!(shape(json!({"table": "items", "replica": "partial"})).is_err());
    }

    #[test]
    fn wheres_are_compared_as_trees_not_text() {
        let policy = GatekeeperPolicy::new();
        let claim = policy
            .read_claim(&json!({"table": "items", "where": "a = $1 AND b > 2", "params": ["x"]}))
            .map_err(|ClaimError(reason)| reason)
            .unwrap();
        let same = request("table=items&offset=-1&where=a%3D%241+and+b%3E2&params[1]=x");
        assert!(policy.compare(&claim, &same).is_ok());
        let wider = request("table=items&offset=-1&where=a%3D%241+or+b%3E2&params[1]=x");
        let refusal = policy.compare(&claim, &wider).unwrap_err();
        assert_eq!(refusal.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(refusal.field_errors().next().unwrap().0, "where");
        let broken = request("table=items&offset=-1&where=a%3D&params[1]=x");
        assert_eq!(policy.compare(&claim, &broken).unwrap_err().status(), 400);
    }

    #[test]
    fn columns_are_compared_as_sets_of_identifiers() {
        let policy = GatekeeperPolicy::new();
        let claim = policy
            .read_claim(&json!({"table": "items", "columns": "id,\"Title\""}))
            .map_err(|ClaimError(reason)| reason)
            .unwrap();
        let same = request("table=items&offset=-1&columns=%22Title%22,%22id%22");
        assert!(policy.compare(&claim, &same).is_ok());
        let other_case = request("table=items&offset=-1&columns=id,title");
        assert!(policy.compare(&claim, &other_case).is_err());
    }
}
