//! The upstream request, built from scratch out of the client's protocol params and the
//! policy's decision. Pure functions, no tower.

use bytes::Bytes;

use crate::protocol::{
    subset_params, Identifier, LogMode, ShapeRequest, SqlError, SqlExpr, SqlLimits, SqlOrderBy,
    SubsetParams,
};
use crate::rejection::Rejection;

use super::allow::{check_client, check_order_by, ClientRules};
use super::canonical;
use super::decision::{RowFilter, ShapeDefinition};
use super::memo::{WhereInputs, WhereMemo};

/// A refusal naming the rule that was broken, never the policy's values.
fn forbidden(field: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection::forbidden().with_field_error(field, reason)
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection::invalid_request().with_field_error(field, reason)
}

/// A client SQL error as a refusal: reaching for what the client may not see is 403,
/// malformed text is 400.
fn sql_rejection(field: &'static str, error: &SqlError) -> Rejection {
    match error {
        SqlError::Subquery
        | SqlError::HiddenColumn(_)
        | SqlError::QualifiedColumn
        | SqlError::FunctionNotAllowed(_)
        | SqlError::NotAllowed(_) => forbidden(field, error.to_string()),
        _ => invalid(field, error.to_string()),
    }
}

/// The client's expression, parsed and held to the client rules.
fn client_expr(
    field: &'static str,
    text: &str,
    visible: Option<&[Identifier]>,
    param_count: usize,
    limits: SqlLimits,
) -> Result<SqlExpr, Rejection> {
    let expr = SqlExpr::parse(text, limits).map_err(|error| sql_rejection(field, &error))?;
    let rules = ClientRules {
        visible,
        param_count,
        max_depth: limits.max_depth,
    };
    check_client(&expr, &rules).map_err(|error| sql_rejection(field, &error))?;
    Ok(expr)
}

/// A client's where (or subset where) with what it is checked against.
#[derive(Clone, Copy)]
struct ClientWhere<'a> {
    /// The names of the where and params fields, for refusals.
    fields: (&'static str, &'static str),
    text: Option<&'a str>,
    param_count: usize,
    visible: Option<&'a [Identifier]>,
    limits: SqlLimits,
}

/// The where sent upstream: the client's, checked, ANDed with `filter` as a tree, rendered and
/// read back (through `memo`, which keeps the text for the next request with the same inputs).
/// The filter's placeholders follow the client's.
fn compose_where(
    memo: &WhereMemo,
    client: ClientWhere<'_>,
    filter: Option<&RowFilter>,
) -> Result<Option<String>, Rejection> {
    let (where_field, params_field) = client.fields;
    let Some(text) = client.text else {
        if client.param_count > 0 {
            // Also keeps the filter's `$1` from meaning a client's value.
            return Err(invalid(params_field, "given without where"));
        }
        // No placeholder moves: the filter's own text, read back when it was built.
        return Ok(filter.map(|filter| filter.sql().to_owned()));
    };
    let inputs = WhereInputs {
        client: text,
        param_count: client.param_count,
        visible: client.visible,
        filter,
        limits: client.limits,
    };
    let composed = memo.get_or_compose(inputs, || {
        let checked = client_expr(
            where_field,
            text,
            client.visible,
            client.param_count,
            client.limits,
        )?;
        let composed = match filter {
            Some(filter) => {
                let mut policy = filter.expr().clone();
                policy
                    .shift_placeholders(client.param_count)
                    .map_err(|error| sql_rejection(where_field, &error))?;
                checked.and(policy)
            }
            None => checked,
        };
        composed
            .to_sql()
            .map_err(|error| sql_rejection(where_field, &error))
    })?;
    Ok(Some(composed.to_string()))
}

/// Builds the upstream request: the protocol params of `client` that `definition` allows, plus
/// the definition's table, columns, where (client's ANDed with the row filter) and params.
/// Everything else the client sent (extras, credentials, `queryable_columns`, structured subset
/// expressions) is left behind.
pub(crate) fn rebuild(
    client: &ShapeRequest,
    definition: &ShapeDefinition,
    limits: SqlLimits,
    memo: &WhereMemo,
) -> Result<ShapeRequest, Rejection> {
    let visible = definition.columns.as_deref();
    // Canonical (see `canonical`): a cache between the gateway and Electric keys on this URL.
    let mut upstream = ShapeRequest {
        table: Some(definition.table.clone()),
        ..canonical::protocol_params(client)
    };

    // Electric reads a missing `log` as `full`, so that is what the policy's modes are held to.
    let log = client.log.unwrap_or(LogMode::Full);
    if !definition.log_modes.contains(&log) {
        return Err(forbidden("log", "this mode is not allowed for this shape"));
    }
    upstream.log = canonical::log(log);

    upstream.replica = match (definition.replica, client.replica) {
        (Some(forced), Some(asked)) if forced != asked => {
            return Err(forbidden(
                "replica",
                "this mode is not allowed for this shape",
            ))
        }
        (Some(forced), _) => Some(forced),
        (None, Some(asked)) if !definition.replica_modes.contains(&asked) => {
            return Err(forbidden(
                "replica",
                "this mode is not allowed for this shape",
            ))
        }
        (None, asked) => canonical::client_replica(asked),
    };

    upstream.columns = match (&client.columns, visible) {
        (Some(asked), Some(visible)) => {
            if let Some(hidden) = asked.iter().find(|column| !visible.contains(column)) {
                return Err(forbidden(
                    "columns",
                    format!(
                        "is not visible: {}",
                        crate::rejection::echo(&hidden.to_sql())
                    ),
                ));
            }
            Some(canonical::column_order(asked, Some(visible)))
        }
        (Some(asked), None) => Some(canonical::column_order(asked, None)),
        (None, visible) => visible.map(<[Identifier]>::to_vec),
    };

    if client.where_clause.is_some() && !definition.client_where {
        return Err(forbidden(
            "where",
            "a client where is not allowed for this shape",
        ));
    }
    let filter = match &definition.row_filter {
        Some(bound) if bound.params.len() != bound.filter.param_count() => {
            tracing::error!(
                table = %definition.table,
                expected = bound.filter.param_count(),
                given = bound.params.len(),
                "row filter given the wrong number of values; refusing"
            );
            return Err(
                Rejection::forbidden().with_message("the shape policy could not be applied")
            );
        }
        Some(bound) => Some(bound),
        None => None,
    };
    let inputs = ClientWhere {
        fields: ("where", "params"),
        text: client.where_clause.as_deref(),
        param_count: client.params.len(),
        visible,
        limits,
    };
    upstream.where_clause = compose_where(memo, inputs, filter.map(|bound| &bound.filter))?;
    // The client's values keep their numbers; the policy's follow them.
    upstream.params = client.params.clone();
    if let Some(bound) = filter {
        upstream.params.extend(bound.params.iter().cloned());
    }

    if client.subset.is_present() {
        if !definition.subsets {
            return Err(forbidden(
                "subset",
                "subsets are not allowed for this shape",
            ));
        }
        upstream.subset = rebuild_subset(&client.subset, visible, limits, memo)?;
    }
    if definition.subsets {
        upstream.queryable_columns = visible.map(<[Identifier]>::to_vec);
    }
    upstream.validate().map_err(Rejection::from)?;
    Ok(upstream)
}

fn rebuild_subset(
    subset: &SubsetParams,
    visible: Option<&[Identifier]>,
    limits: SqlLimits,
    memo: &WhereMemo,
) -> Result<SubsetParams, Rejection> {
    // Structured expressions are not checked here; the text forms are, and only they go on.
    if subset.where_expr.is_some() && subset.where_clause.is_none() {
        return Err(invalid(
            "subset__where_expr",
            "is not supported here; send subset__where",
        ));
    }
    if subset.order_by_expr.is_some() && subset.order_by.is_none() {
        return Err(invalid(
            "subset__order_by_expr",
            "is not supported here; send subset__order_by",
        ));
    }
    let inputs = ClientWhere {
        fields: ("subset__where", "subset__params"),
        text: subset.where_clause.as_deref(),
        param_count: subset.params.as_ref().map_or(0, Vec::len),
        visible,
        limits,
    };
    // Electric ANDs the subset's where with the shape's, row filter included.
    let where_clause = compose_where(memo, inputs, None)?;
    let order_by = match &subset.order_by {
        None => None,
        Some(text) => {
            let order = SqlOrderBy::parse(text, limits)
                .map_err(|error| sql_rejection("subset__order_by", &error))?;
            check_order_by(&order, visible)
                .and_then(|()| order.to_sql())
                .map(Some)
                .map_err(|error| sql_rejection("subset__order_by", &error))?
        }
    };
    Ok(SubsetParams {
        where_clause,
        params: subset.params.clone().filter(|params| !params.is_empty()),
        limit: subset.limit,
        offset: subset.offset,
        order_by,
        where_expr: None,
        order_by_expr: None,
    })
}

/// The keys a subset body may hold.
const BODY_KEYS: [&str; 5] = ["where", "params", "limit", "offset", "order_by"];

/// A POST body read as subset params. Only [`BODY_KEYS`] are accepted (optionally inside one
/// `subset` object): Electric merges every other body key over the URL's params, so a
/// `{"table": "other"}` would replace the policy's table.
pub(crate) fn subset_from_body(body: &[u8]) -> Result<SubsetParams, Rejection> {
    let not_object = || invalid("body", "must be a JSON object");
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(SubsetParams::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| not_object())?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(not_object());
    };
    if object.len() == 1 {
        match object.remove("subset") {
            Some(serde_json::Value::Object(inner)) => object = inner,
            Some(_) => return Err(invalid("subset", "must be a JSON object")),
            None => {}
        }
    }
    let mut subset = SubsetParams::default();
    for (key, value) in object {
        let field: &'static str =
            match BODY_KEYS.iter().find(|known| **known == key) {
                Some(known) => known,
                None => return Err(Rejection::invalid_request().with_field_error(
                    key,
                    "is not allowed in a subset body (only where, params, limit, offset, order_by)",
                )),
            };
        match (field, value) {
            ("where", serde_json::Value::String(text)) => subset.where_clause = Some(text),
            ("order_by", serde_json::Value::String(text)) => subset.order_by = Some(text),
            ("params", value @ serde_json::Value::Object(_)) => {
                subset.params = Some(subset_params(&value.to_string()).map_err(|_| {
                    invalid("params", "must be a JSON object of strings keyed 1..n")
                })?);
            }
            ("limit", serde_json::Value::Number(number)) if number.as_u64().is_some() => {
                subset.limit = number.as_u64();
            }
            ("offset", serde_json::Value::Number(number)) if number.as_u64().is_some() => {
                subset.offset = number.as_u64();
            }
            (field, _) => return Err(invalid(field, "has the wrong type")),
        }
    }
    Ok(subset)
}

/// The checked subset as the POST body sent upstream.
pub(crate) fn subset_to_body(subset: &SubsetParams) -> Bytes {
    let mut object = serde_json::Map::new();
    if let Some(text) = &subset.where_clause {
        object.insert("where".into(), text.clone().into());
    }
    if let Some(params) = &subset.params {
        let params: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .enumerate()
            .map(|(index, value)| ((index + 1).to_string(), value.clone().into()))
            .collect();
        object.insert("params".into(), params.into());
    }
    if let Some(limit) = subset.limit {
        object.insert("limit".into(), limit.into());
    }
    if let Some(offset) = subset.offset {
        object.insert("offset".into(), offset.into());
    }
    if let Some(text) = &subset.order_by {
        object.insert("order_by".into(), text.clone().into());
    }
    Bytes::from(serde_json::Value::Object(object).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RowFilter;
    use crate::protocol::TableName;

    fn definition() -> ShapeDefinition {
        let columns = ["id", "title"].map(|c| Identifier::parse(c).unwrap());
        ShapeDefinition::new(TableName::parse("items").unwrap())
            .columns(columns)
            .row_filter(&RowFilter::parse("owner = $1").unwrap(), ["u1"])
            .allow_client_where(true)
            .allow_subsets(true)
    }

    fn rebuilt(query: &str) -> Result<ShapeRequest, Rejection> {
        rebuild(
            &ShapeRequest::parse(query).unwrap(),
            &definition(),
            SqlLimits::default(),
            &WhereMemo::new(0),
        )
    }

    #[test]
    fn client_where_is_anded_before_the_row_filter() {
        let upstream = rebuilt("table=items&offset=-1&where=id+%3D+%241&params[1]=5").unwrap();
        assert_eq!(
            upstream.where_clause.as_deref(),
            Some("id = $1 AND owner = $2")
        );
        assert_eq!(upstream.params, ["5", "u1"]);
    }

    #[test]
    fn refusals_have_the_status_of_their_rule() {
        let status = |query: &str| rebuilt(query).unwrap_err().status().as_u16();
        assert_eq!(status("table=items&offset=-1&where=owner+%3D+%27x%27"), 403);
        assert_eq!(status("table=items&offset=-1&where=id+%3D"), 400);
        assert_eq!(status("table=items&offset=-1&columns=owner"), 403);
        assert_eq!(status("table=items&offset=-1&subset__order_by=owner"), 403);
    }

    #[test]
    fn a_subset_body_keeps_only_subset_keys() {
        let subset = subset_from_body(br#"{"subset":{"where":"id = 1","limit":2}}"#).unwrap();
        assert_eq!(subset.where_clause.as_deref(), Some("id = 1"));
        assert_eq!(subset.limit, Some(2));
        assert_eq!(subset_from_body(b"  ").unwrap(), SubsetParams::default());
        let refused = subset_from_body(br#"{"where":"id = 1","table":"other"}"#).unwrap_err();
        assert_eq!(refused.field_errors().next().unwrap().0, "table");
    }

    #[test]
    fn a_subset_body_round_trips() {
        let subset = SubsetParams {
            where_clause: Some("title = $1".into()),
            params: Some(vec!["a\"b".into()]),
            limit: Some(1),
            offset: Some(2),
            order_by: Some("id".into()),
            ..SubsetParams::default()
        };
        assert_eq!(subset_from_body(&subset_to_body(&subset)).unwrap(), subset);
    }
}
