#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stderr
)]
//! Differential test of the policy against Postgres itself (issue 15).
//!
//! Every request of the policy tests' attack cases (`support/attack_cases.rs`) and a corpus
//! generated with a fixed seed goes through [`ShapeParamPolicyLayer`] to a stub that records
//! what it would send to Electric. What is forwarded is then run in a throwaway Postgres
//! ([`TestCluster`]) the way Electric runs it: `SELECT ... FROM items WHERE <forwarded where>`
//! prepared as one statement, with each `params[n]` bound as text so that Postgres types it
//! from its context, as Electric's inlined typed literals are; a subset's where, order by,
//! limit and offset likewise with the subset's params. Invariants:
//!
//! - (a) Postgres accepts every forwarded clause. Its rejection is a failure, except for
//!   errors of typing and values (SQLSTATE class 22, and `42804`, `42883`, `42725`, `42P18`,
//!   `42846`, `42P21`, `42P22`), which depend on column types the gateway is not told and
//!   Electric answers with a 400 as well; those are counted, and most of the corpus must run.
//!   Postgres must also read exactly as many placeholders as the gateway sent params.
//! - (b) Every row the forwarded where returns belongs to the principal's tenant.
//! - (c) Nothing forwarded reads the hidden column. Postgres judges this itself: the
//!   statements run as a role granted `SELECT` on the visible columns only, so any reference
//!   to `internal_note` (or a system column, a whole-row reference, another table) is a
//!   `permission denied` and a failure.
//!
//! Refusals by the gateway are fine, but at least 30% of the corpus must be forwarded so that
//! the test cannot pass by refusing everything.

#[path = "support/attack_cases.rs"]
mod attack_cases;

use std::convert::Infallible;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use tokio_postgres::Client;
use tower::{service_fn, Layer, ServiceExt};
use tower_electric::policy::{RequestBody, ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
use tower_electric::protocol::query::encode_component;
use tower_electric::protocol::ShapeRequest;
use tower_electric::testing::postgres::TestCluster;

use attack_cases::AttackRequest;

/// The two tenants; the second one's name needs quoting in any literal.
const TENANTS: [&str; 2] = ["acme", r"o'hara\"];
/// Generated cases (the attack cases come on top).
const GENERATED_CASES: usize = 2_400;
/// The visible columns; `internal_note` is hidden.
const VISIBLE: [&str; 5] = ["id", "tenant_id", "title", "done", "étiquette"];

const SCHEMA: &str = r#"
CREATE TABLE items (
    id int8 PRIMARY KEY,
    tenant_id text NOT NULL,
    title text,
    done bool NOT NULL,
    internal_note text,
    "étiquette" text
);
CREATE TABLE tenants (id text PRIMARY KEY, name text, keys text);
CREATE ROLE principal NOLOGIN;
GRANT SELECT (id, tenant_id, title, done, "étiquette") ON items TO principal;
"#;

/// Rows of both tenants whose titles are the kind of text the corpus compares with.
const TITLES: [&str; 8] = [
    "Draft the plan",
    "it's done",
    r"back\slash",
    r"\') OR true --",
    "100% _sure_",
    "$$dollar$$",
    "héllo wörld",
    "a''b",
];

#[derive(Clone)]
struct Principal(String);

fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts
        .extensions
        .get::<Principal>()
        .map(|p| vec![p.0.clone()])
}

fn policy() -> ShapePolicy {
    ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(VISIBLE)
                .row_filter("tenant_id = $1", tenant)
                .client_where(true)
                .subsets(true),
        )
        .table(
            TablePolicy::new("tenants")
                .columns(["id", "name"])
                .row_filter("id = $1", tenant),
        )
        .build()
        .unwrap()
}

/// A parameter sent in text format, typed by Postgres from where it is used.
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// What the gateway forwarded, decoded as Electric decodes it.
struct Forwarded {
    upstream: ShapeRequest,
    /// A POST's subset, from its body.
    body: Option<serde_json::Value>,
}

type Gateway = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_electric::body::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

/// The last request the gateway forwarded: its URI and body.
type Recorder = Arc<Mutex<Option<(String, Bytes)>>>;

fn gateway() -> (Gateway, Recorder) {
    let last: Recorder = Arc::default();
    let recorder = Arc::clone(&last);
    let inner = service_fn(move |request: Request<RequestBody<Full<Bytes>>>| {
        let recorder = Arc::clone(&recorder);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            *recorder.lock().unwrap() = Some((parts.uri.to_string(), body));
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"[]"))))
        }
    });
    let layer = ShapeParamPolicyLayer::new(policy());
    (Gateway::new(layer.layer(inner)), last)
}

/// Sends `case` through the gateway; what it forwarded is in the recorder.
async fn forward(gateway: &Gateway, case: &Case) {
    let mut request = Request::builder()
        .method(case.method.clone())
        .uri(format!("/v1/shape?{}", case.query))
        .body(Full::new(Bytes::from(case.body.clone())))
        .unwrap();
    request
        .extensions_mut()
        .insert(Principal(case.tenant.to_owned()));
    let _ = gateway.clone().oneshot(request).await.unwrap();
}

/// One client request and the tenant sending it.
#[derive(Debug, Clone)]
struct Case {
    tenant: &'static str,
    method: Method,
    query: String,
    body: String,
}

/// The SQLSTATEs that say a value or a type did not fit, not that the text was read in
/// another way than the gateway read it.
fn is_typing_error(code: &SqlState) -> bool {
    code.code().starts_with("22")
        || [
            SqlState::DATATYPE_MISMATCH,
            SqlState::UNDEFINED_FUNCTION,
            SqlState::AMBIGUOUS_FUNCTION,
            SqlState::INDETERMINATE_DATATYPE,
            SqlState::CANNOT_COERCE,
            SqlState::COLLATION_MISMATCH,
            SqlState::INDETERMINATE_COLLATION,
        ]
        .contains(code)
}

#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    refused: usize,
    forwarded: usize,
    /// Forwarded statements (shape or subset) Postgres ran.
    ran: usize,
    /// Forwarded statements Postgres refused for a type or value.
    typing: usize,
    /// Forwarded clauses that are syntax errors to Postgres, as the client's own text was:
    /// the gateway let through what Electric will refuse, but changed nothing.
    passed_invalid: Vec<String>,
    rows: usize,
    failures: Vec<String>,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Prepares and runs `sql` with `params` as text. `Ok(None)`: a typing error, counted.
async fn run(
    client: &Client,
    sql: &str,
    params: &[String],
    client_sql: Option<&str>,
    tally: &mut Tally,
    case: &str,
) -> Option<Vec<tokio_postgres::Row>> {
    let describe = |stage: &str, error: &tokio_postgres::Error| {
        let detail = error
            .as_db_error()
            .map(|db| format!("{} {}", db.code().code(), db.message()))
            .unwrap_or_else(|| error.to_string());
        format!("{case}\n  {stage}: {detail}\n  sql: {sql}\n  params: {params:?}")
    };
    let statement = match client.prepare(sql).await {
        Ok(statement) => statement,
        Err(error) if error.code().is_some_and(is_typing_error) => {
            tally.typing += 1;
            return None;
        }
        Err(error) => {
            if error.code() == Some(&SqlState::SYNTAX_ERROR) {
                if let Some(client_sql) = client_sql {
                    let own = client.prepare(client_sql).await;
                    if own.is_err_and(|own| own.code() == Some(&SqlState::SYNTAX_ERROR)) {
                        tally
                            .passed_invalid
                            .push(describe("passed through", &error));
                        return None;
                    }
                }
            }
            tally
                .failures
                .push(describe("(a) Postgres rejects", &error));
            return None;
        }
    };
    if statement.params().len() != params.len() {
        tally.failures.push(format!(
            "{case}\n  (a) Postgres reads {} placeholders, {} params were sent\n  sql: {sql}",
            statement.params().len(),
            params.len()
        ));
        if statement.params().len() > params.len() {
            return None;
        }
        // Fewer: a placeholder was read as part of a literal or a comment. Run it with the
        // params it reads, so that the rows say what the clause lets through.
    }
    let values: Vec<TextParam<'_>> = params
        .iter()
        .take(statement.params().len())
        .map(|p| TextParam(p))
        .collect();
    let values: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
    match client.query(&statement, &values).await {
        Ok(rows) => {
            tally.ran += 1;
            Some(rows)
        }
        Err(error) if error.code().is_some_and(is_typing_error) => {
            tally.typing += 1;
            None
        }
        Err(error) => {
            tally
                .failures
                .push(describe("(a) Postgres fails it", &error));
            None
        }
    }
}

/// The subset of a request: from the query, or from a POST's body.
fn subset_of(
    request: &ShapeRequest,
    body: Option<&serde_json::Value>,
) -> Result<Option<SubsetSql>, String> {
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    let subset = match body {
        Some(serde_json::Value::Object(body)) if !body.is_empty() => SubsetSql {
            where_clause: body.get("where").and_then(text),
            params: match body.get("params") {
                Some(serde_json::Value::Object(params)) => (1..=params.len())
                    .map(|n| params.get(&n.to_string()).and_then(text))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("subset params not numbered 1..n")?,
                None => Vec::new(),
                Some(other) => return Err(format!("subset params {other}")),
            },
            order_by: body.get("order_by").and_then(text),
            limit: body.get("limit").and_then(text),
            offset: body.get("offset").and_then(text),
        },
        Some(serde_json::Value::Object(_)) | None => {
            let subset = &request.subset;
            if !subset.is_present() {
                return Ok(None);
            }
            SubsetSql {
                where_clause: subset.where_clause.clone(),
                params: subset.params.clone().unwrap_or_default(),
                order_by: subset.order_by.clone(),
                limit: subset.limit.map(|n| n.to_string()),
                offset: subset.offset.map(|n| n.to_string()),
            }
        }
        Some(other) => return Err(format!("a POST body that is not an object: {other}")),
    };
    Ok(Some(subset))
}

struct SubsetSql {
    where_clause: Option<String>,
    params: Vec<String>,
    order_by: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl SubsetSql {
    fn to_sql(&self) -> Result<String, String> {
        let mut sql = format!(
            "SELECT id FROM items WHERE {}\n",
            self.where_clause.as_deref().unwrap_or("true")
        );
        if let Some(order_by) = &self.order_by {
            sql.push_str(&format!("ORDER BY {order_by}\n"));
        }
        for (keyword, value) in [("LIMIT", &self.limit), ("OFFSET", &self.offset)] {
            if let Some(value) = value {
                if value.parse::<u64>().is_err() {
                    return Err(format!("subset {keyword} {value:?}"));
                }
                sql.push_str(&format!("{keyword} {value}\n"));
            }
        }
        Ok(sql)
    }
}

async fn check(client: &Client, case: &Case, forwarded: &Forwarded, tally: &mut Tally) {
    // What the client sent, read as Electric would read it (when it reads at all).
    let sent_request = ShapeRequest::parse(&case.query).ok();
    let sent_body: Option<serde_json::Value> = serde_json::from_str(&case.body).ok();
    let sent = sent_request
        .as_ref()
        .map(|request| (request, sent_body.as_ref()));
    let label = format!(
        "{} {} {} (tenant {:?})",
        case.method, case.query, case.body, case.tenant
    );
    let upstream = &forwarded.upstream;
    if upstream.table.as_ref().map(|t| t.to_param()).as_deref() != Some("public.items") {
        tally
            .failures
            .push(format!("{label}\n  forwarded table {:?}", upstream.table));
        return;
    }
    let Some(where_clause) = &upstream.where_clause else {
        tally
            .failures
            .push(format!("{label}\n  (b) forwarded without a where"));
        return;
    };
    let columns: Vec<String> = match &upstream.columns {
        Some(columns) => columns.iter().map(|c| quoted(c.as_str())).collect(),
        None => vec!["*".to_owned()],
    };
    // The where last on its line, as Electric puts it after `WHERE`: a `--` in it cannot
    // reach anything of ours.
    let sql = format!(
        "SELECT tenant_id, {} FROM items WHERE {where_clause}\n",
        columns.join(", ")
    );
    let client_sql = sent
        .and_then(|(request, _)| request.where_clause.as_ref())
        .map(|own| format!("SELECT 1 FROM items WHERE {own}\n"));
    if let Some(rows) = run(
        client,
        &sql,
        &upstream.params,
        client_sql.as_deref(),
        tally,
        &label,
    )
    .await
    {
        for row in &rows {
            let owner: String = row.get(0);
            if owner != case.tenant {
                tally.failures.push(format!(
                    "{label}\n  (b) a row of {owner:?} for {:?}\n  sql: {sql}\n  params: {:?}",
                    case.tenant, upstream.params
                ));
                break;
            }
        }
        tally.rows += rows.len();
    }
    let subset = match subset_of(upstream, forwarded.body.as_ref()) {
        Ok(Some(subset)) => subset,
        Ok(None) => return,
        Err(problem) => {
            tally.failures.push(format!("{label}\n  {problem}"));
            return;
        }
    };
    // Electric ANDs the subset's where with the shape's, whose rows were checked above; here
    // the subset's own clauses must be read by Postgres as the gateway read them.
    let sql = match subset.to_sql() {
        Ok(sql) => sql,
        Err(problem) => {
            tally.failures.push(format!("{label}\n  {problem}"));
            return;
        }
    };
    let client_sql = sent
        .and_then(|(request, body)| subset_of(request, body).ok().flatten())
        .and_then(|subset| subset.to_sql().ok());
    let _ = run(
        client,
        &sql,
        &subset.params,
        client_sql.as_deref(),
        tally,
        &label,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The generated corpus

/// Pieces of string content that end literals early in one reading or another.
fn content() -> impl Strategy<Value = String> {
    const PIECES: [&str; 21] = [
        "'",
        "''",
        "\\",
        "\\'",
        "\\\\",
        "$",
        "$$",
        "$q$",
        "--",
        "/*",
        "*/",
        ") OR true --",
        "' OR '1'='1",
        "é",
        "\u{1F600}",
        "\n",
        "%",
        "_",
        "!",
        "it's done",
        "Draft the plan",
    ];
    proptest::collection::vec(
        prop_oneof![
            6 => proptest::sample::select(PIECES.to_vec()).prop_map(str::to_owned),
            1 => "[a-z]{1,4}",
        ],
        0..5,
    )
    .prop_map(|parts| parts.concat())
}

/// A string literal holding `text`, in one of Postgres's spellings (or a naive one that
/// does not escape at all).
fn literal_of(text: &str, form: u8) -> String {
    match form {
        0 => format!("'{}'", text.replace('\'', "''")),
        1 => format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        2 => format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''")),
        3 => {
            let mut body = String::new();
            for c in text.chars() {
                match c {
                    '!' => body.push_str("!!"),
                    '\'' => body.push_str("''"),
                    c if c.is_ascii_alphanumeric() || c == ' ' => body.push(c),
                    c if (c as u32) <= 0xFFFF => body.push_str(&format!("!{:04X}", c as u32)),
                    c => body.push_str(&format!("!+{:06X}", c as u32)),
                }
            }
            format!("U&'{body}' UESCAPE '!'")
        }
        4 => {
            let mut body = String::new();
            for c in text.chars() {
                match c {
                    '\\' => body.push_str("\\\\"),
                    '\'' => body.push_str("''"),
                    c if c.is_ascii() => body.push(c),
                    c => body.push_str(&format!("\\+{:06X}", c as u32)),
                }
            }
            format!("U&'{body}'")
        }
        5 => format!("$${text}$$"),
        6 => format!("$q${text}$q$"),
        // Unescaped: what a string-building client writes.
        _ => format!("'{text}'"),
    }
}

fn string_literal() -> impl Strategy<Value = String> {
    (content(), 0..9u8).prop_map(|(text, form)| literal_of(&text, form))
}

/// A where fragment: its text with `$?` for each placeholder, and their values.
type Fragment = (String, Vec<String>);

fn text_operand() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(vec!["title", "tenant_id", "étiquette"]).prop_map(str::to_owned),
        2 => proptest::sample::select(vec![
            "\"title\"", "TITLE", "Title", "\"Title\"", "ÉTIQUETTE", "\"étiquette\"",
            "items.title", "public.items.title", "lower(title)", "upper(tenant_id)",
            "title || 'x'", "CAST(title AS text)", "title::text", "title::varchar(3)",
            "coalesce(title, '')", "btrim(title)", "length(title)::text",
        ]).prop_map(str::to_owned),
        2 => proptest::sample::select(vec![
            "internal_note", "\"internal_note\"", "INTERNAL_NOTE", "items.internal_note",
            "lower(internal_note)", "ctid::text", "xmin::text", "tableoid::text",
            "items::text", "row_to_json(items)::text",
        ]).prop_map(str::to_owned),
    ]
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => content(),
        1 => proptest::sample::select(TITLES.to_vec()).prop_map(str::to_owned),
        1 => proptest::sample::select(TENANTS.to_vec()).prop_map(str::to_owned),
    ]
}

fn text_atom() -> impl Strategy<Value = Fragment> {
    let op = proptest::sample::select(vec![
        "=", "<>", "!=", "<", ">=", "LIKE", "ILIKE", "NOT LIKE", "~~", "||",
    ]);
    let plain = |s: String| (s, Vec::new());
    prop_oneof![
        6 => (text_operand(), op.clone(), string_literal())
            .prop_map(move |(c, op, l)| plain(format!("{c} {op} {l}"))),
        2 => (string_literal(), text_operand()).prop_map(move |(l, c)| plain(format!("{l} = {c}"))),
        4 => (text_operand(), op, text_value())
            .prop_map(|(c, op, v)| (format!("{c} {op} $?"), vec![v])),
        2 => (text_value(), text_operand())
            .prop_map(|(v, c)| (format!("CAST($? AS text) = {c}"), vec![v])),
        2 => (text_operand(), string_literal(), string_literal())
            .prop_map(move |(c, a, b)| plain(format!("{c} IN ({a}, {b})"))),
        1 => (text_operand(), string_literal(), string_literal())
            .prop_map(move |(c, a, b)| plain(format!("{c} BETWEEN {a} AND {b}"))),
        2 => (text_operand(), any::<bool>())
            .prop_map(move |(c, not)| plain(format!("{c} IS {}NULL", if not { "NOT " } else { "" }))),
        1 => (text_operand(), string_literal())
            .prop_map(move |(c, l)| plain(format!("{c} LIKE {l} ESCAPE '\\'"))),
    ]
}

fn int_atom() -> impl Strategy<Value = Fragment> {
    let plain = |s: String| (s, Vec::new());
    let op = proptest::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]);
    prop_oneof![
        4 => (op.clone(), 0..12i64).prop_map(move |(op, n)| plain(format!("id {op} {n}"))),
        3 => (op.clone(), prop_oneof![
            4 => (0..12i64).prop_map(|n| n.to_string()),
            1 => proptest::sample::select(vec!["1.5", "-0", " 3", "x", "1e2", "'; --"]).prop_map(str::to_owned),
        ]).prop_map(|(op, v)| (format!("id {op} $?"), vec![v])),
        1 => (0..12i64).prop_map(move |n| plain(format!("id IN ({n}, {}, {})", n + 1, n + 2))),
        1 => (0..12i64).prop_map(move |n| plain(format!("'{n}'::int8 = id"))),
        1 => (0..12i64).prop_map(move |n| plain(format!("CAST(id AS int4) >= {n}"))),
        1 => (0..12i64).prop_map(move |n| plain(format!("id::text = '{n}'"))),
        1 => (0..12i64).prop_map(move |n| plain(format!("id + 1 > {n}"))),
        1 => (0..12i64).prop_map(move |n| plain(format!("id::float8 < {n}.5"))),
        1 => (0..12i64).prop_map(move |n| plain(format!("abs(id - {n}) <= 2"))),
        1 => Just(plain("id % 2 = 0".into())),
        1 => Just(plain("ID = 1".into())),
        1 => Just(plain("\"ID\" = 1".into())),
    ]
}

fn bool_atom() -> impl Strategy<Value = Fragment> {
    let plain = |s: &str| (s.to_owned(), Vec::new());
    prop_oneof![
        6 => proptest::sample::select(vec![
            "done", "NOT done", "done = true", "done IS TRUE", "done IS NOT FALSE", "done = 't'",
            "done::text = 'true'", "done::int = 1", "true", "false", "NULL", "NOT (done)",
            "\"done\"", "DONE", "(done) = (NOT done)", "done IS NULL",
        ]).prop_map(plain),
        2 => proptest::sample::select(vec!["t", "false", "yes", "off", "1", "maybe"])
            .prop_map(|v| ("done = $?".to_owned(), vec![v.to_owned()])),
        1 => proptest::sample::select(vec![
            "done /* a /* nested */ comment */", "done -- trailing\n", "done /* unclosed",
            "/**/done", "done;", "done; SELECT 1", "(SELECT true)", "done) OR (true",
            "pg_sleep(0) IS NULL", "current_user = 'postgres'",
        ]).prop_map(plain),
    ]
}

fn atom() -> impl Strategy<Value = Fragment> {
    prop_oneof![
        5 => text_atom(),
        3 => int_atom(),
        2 => bool_atom(),
    ]
}

fn where_fragment() -> impl Strategy<Value = Fragment> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|((a, mut pa), (b, pb))| {
                pa.extend(pb);
                (format!("{a} AND {b}"), pa)
            }),
            (inner.clone(), inner.clone()).prop_map(|((a, mut pa), (b, pb))| {
                pa.extend(pb);
                (format!("({a}) OR ({b})"), pa)
            }),
            inner.clone().prop_map(|(a, pa)| (format!("NOT ({a})"), pa)),
            inner.prop_map(|(a, pa)| (format!("({a})"), pa)),
        ]
    })
}

/// `$?` numbered `$1`, `$2`, ... in order.
fn numbered((text, params): Fragment) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut pieces = text.split("$?");
    out.push_str(pieces.next().unwrap_or_default());
    for (index, piece) in pieces.enumerate() {
        out.push_str(&format!("${}", index + 1));
        out.push_str(piece);
    }
    (out, params)
}

fn case() -> impl Strategy<Value = Case> {
    let order_by = proptest::sample::select(vec![
        "id",
        "title DESC NULLS LAST",
        "done, id DESC",
        "\"id\" ASC NULLS FIRST",
        "étiquette",
        "lower(title)",
        "internal_note",
        "id USING <",
        "1",
    ]);
    let columns = proptest::option::weighted(
        0.25,
        proptest::sample::select(vec![
            "id,title",
            "\"id\",\"tenant_id\",\"étiquette\"",
            "id,done",
            "id,internal_note",
            "id,ctid",
        ]),
    );
    let subset = proptest::option::weighted(
        0.35,
        (
            proptest::option::weighted(0.8, where_fragment()),
            proptest::option::weighted(0.6, order_by),
            proptest::option::of(0..5u8),
            proptest::option::weighted(0.3, 0..3u8),
        ),
    );
    (
        0..TENANTS.len(),
        proptest::option::weighted(0.85, where_fragment()),
        columns,
        subset,
        any::<bool>(),
    )
        .prop_map(|(tenant, where_clause, columns, subset, post)| {
            let mut pairs: Vec<(String, String)> = vec![
                ("table".into(), "items".into()),
                ("offset".into(), "-1".into()),
            ];
            if let Some(fragment) = where_clause {
                let (text, params) = numbered(fragment);
                pairs.push(("where".into(), text));
                for (index, value) in params.into_iter().enumerate() {
                    pairs.push((format!("params[{}]", index + 1), value));
                }
            }
            if let Some(columns) = columns {
                pairs.push(("columns".into(), columns.into()));
            }
            let mut body = serde_json::Map::new();
            let post = post && subset.is_some();
            if let Some((subset_where, order_by, limit, offset)) = subset {
                let (limit, offset) = match (order_by, limit, offset) {
                    // Electric needs an order for a limit or an offset.
                    (None, _, _) => (None, None),
                    (Some(_), limit, offset) => (limit, offset),
                };
                let mut fields: Vec<(&str, serde_json::Value)> = Vec::new();
                if let Some(fragment) = subset_where {
                    let (text, params) = numbered(fragment);
                    fields.push(("where", text.into()));
                    if !params.is_empty() {
                        let params: serde_json::Map<String, serde_json::Value> = params
                            .into_iter()
                            .enumerate()
                            .map(|(index, value)| ((index + 1).to_string(), value.into()))
                            .collect();
                        fields.push(("params", params.into()));
                    }
                }
                if let Some(order_by) = order_by {
                    fields.push(("order_by", order_by.into()));
                }
                if let Some(limit) = limit {
                    fields.push(("limit", limit.into()));
                }
                if let Some(offset) = offset {
                    fields.push(("offset", offset.into()));
                }
                for (key, value) in fields {
                    if post {
                        body.insert(key.into(), value);
                    } else {
                        let text = match value {
                            serde_json::Value::String(text) => text,
                            other => other.to_string(),
                        };
                        pairs.push((format!("subset__{key}"), text));
                    }
                }
            }
            let query = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
                .collect::<Vec<_>>()
                .join("&");
            Case {
                tenant: TENANTS[tenant],
                method: if post { Method::POST } else { Method::GET },
                query,
                body: if post {
                    serde_json::Value::Object(body).to_string()
                } else {
                    String::new()
                },
            }
        })
}

/// The corpus: the attack cases (for the first tenant), then the generated cases, drawn
/// from a fixed seed so that every run checks the same requests.
fn corpus() -> Vec<Case> {
    let mut cases: Vec<Case> = attack_cases::all_requests()
        .into_iter()
        .map(
            |AttackRequest {
                 method,
                 query,
                 body,
             }| Case {
                tenant: TENANTS[0],
                method,
                query,
                body,
            },
        )
        .collect();
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[15; 32]));
    let strategy = case();
    for _ in 0..GENERATED_CASES {
        cases.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    cases
}

async fn setup(client: &Client) {
    client.batch_execute(SCHEMA).await.unwrap();
    let mut id = 0i64;
    for tenant in TENANTS {
        for (index, title) in TITLES.iter().enumerate() {
            id += 1;
            let title: Option<&str> = (index != 0 || tenant == TENANTS[0]).then_some(*title);
            client
                .execute(
                    "INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &tenant,
                        &title,
                        &(id % 2 == 0),
                        &format!("secret of {id}"),
                        &format!("étiquette {}", index % 3),
                    ],
                )
                .await
                .unwrap();
        }
    }
    client
        .batch_execute(
            "INSERT INTO tenants VALUES ('acme', 'Acme', 'k1'), ('o''hara\\', 'O''Hara', 'k2');
             ANALYZE;
             SET statement_timeout = '10s';
             SET ROLE principal;",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_runs_every_forwarded_clause_and_returns_only_the_principals_rows() {
    let started = Instant::now();
    let cluster = TestCluster::start().unwrap();
    let client = cluster.connect().await.unwrap();
    setup(&client).await;
    let (gateway, last) = gateway();
    let cases = corpus();
    let mut tally = Tally::default();
    for case in &cases {
        tally.cases += 1;
        *last.lock().unwrap() = None;
        forward(&gateway, case).await;
        let Some((uri, body)) = last.lock().unwrap().take() else {
            tally.refused += 1;
            continue;
        };
        tally.forwarded += 1;
        let uri: http::Uri = uri.parse().unwrap();
        let upstream = ShapeRequest::parse(uri.query().unwrap_or_default()).unwrap();
        let body = (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap());
        check(&client, case, &Forwarded { upstream, body }, &mut tally).await;
    }
    eprintln!(
        "{}: {} cases ({} attack cases), {} refused by the gateway, {} forwarded; Postgres ran \
         {} statements returning {} rows, refused {} for types or values; {} invalid as sent passed through; {} failures; \
         {:.1?}",
        cluster.version(),
        tally.cases,
        attack_cases::all_requests().len(),
        tally.refused,
        tally.forwarded,
        tally.ran,
        tally.rows,
        tally.typing,
        tally.passed_invalid.len(),
        tally.failures.len(),
        started.elapsed()
    );
    for passed in tally.passed_invalid.iter().take(5) {
        eprintln!("invalid as sent, passed through: {passed}");
    }
    assert!(
        tally.failures.is_empty(),
        "{} failures, the first ones:\n{}",
        tally.failures.len(),
        tally
            .failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(cases.len() >= GENERATED_CASES);
    assert!(
        tally.forwarded * 10 >= tally.cases * 3,
        "only {} of {} forwarded",
        tally.forwarded,
        tally.cases
    );
    // Most forwarded statements ran, and returned rows to check the tenant of.
    assert!(
        tally.ran >= tally.typing * 2,
        "{} ran, {} refused for types",
        tally.ran,
        tally.typing
    );
    assert!(tally.rows > tally.forwarded, "only {} rows", tally.rows);
}
