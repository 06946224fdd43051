//! The policy tests' attack cases, shared by `tests/policy/` (which checks how each one is
//! refused or neutralised) and `tests/postgres_differential/` (which runs whatever the
//! policy forwards for them in Postgres). Each list is for the gateway policy of
//! `tests/policy/`: `items` with `id, tenant_id, title, done` visible, `internal_note`
//! hidden, row filter `tenant_id = $1`, client where and subsets allowed.
#![allow(dead_code)] // each including test uses the lists it needs

/// Client `where`s that would break out of a where built by string concatenation.
pub(crate) const STRING_BUILT_TRICKS: [&str; 5] = [
    "true) OR (true",
    "id = 1 --",
    "id = 1 /* */ OR true",
    "id = 1; drop table items",
    "id = 1 OR true) AND (1 = 1",
];

/// Client `where`s (and subset wheres) that read other tables or rows through a subquery.
pub(crate) const SUBQUERIES: [&str; 4] = [
    "EXISTS (SELECT 1 FROM tenants)",
    "id IN (SELECT id FROM items)",
    "lower((SELECT name FROM tenants LIMIT 1)) = 'a'",
    "title = ANY(SELECT keys FROM tenants)",
];

/// Queries naming the hidden column in `columns`, `where`, or a subset.
pub(crate) const HIDDEN_COLUMN_QUERIES: [&str; 6] = [
    "table=items&offset=-1&columns=id,internal_note",
    "table=items&offset=-1&where=internal_note+%3D+%27x%27",
    "table=items&offset=-1&where=lower(internal_note)+%3D+%27x%27",
    "table=items&offset=-1&where=items.internal_note+IS+NULL",
    "table=items&offset=-1&subset__where=internal_note+IS+NULL",
    "table=items&offset=-1&subset__order_by=internal_note&subset__limit=1",
];

/// POST subset bodies naming the hidden column (to `table=items&offset=-1`).
pub(crate) const HIDDEN_COLUMN_BODIES: [&str; 2] = [
    r#"{"where":"internal_note IS NULL"}"#,
    r#"{"order_by":"internal_note DESC","limit":5}"#,
];

/// Queries with a key given twice, or spelled to look like another key.
pub(crate) const DUPLICATED_KEY_QUERIES: [&str; 5] = [
    "table=items&%74able=tenants&offset=-1",
    "table=items&offset=-1&where=done&where=true",
    "table=items&offset=-1&secret=a&%73ecret=b",
    "table=items&offset=-1&where=id+%3D+%241&params[1]=1&params%5B1%5D=2",
    "table[]=items&offset=-1",
];

/// Client `where`s that try to widen the row filter; it is ANDed at the top whatever they say.
pub(crate) const ROW_FILTER_WIDENERS: [&str; 4] = [
    "done",
    "tenant_id = 'other' OR true",
    "NOT done OR id > 0",
    "title ILIKE '%x%' OR tenant_id IS NOT NULL",
];

/// Client `where`s whose strings hold quotes and backslashes: a literal that ends early in
/// Postgres's reading would turn the rest of the string into SQL (the E'...' fix).
pub(crate) const QUOTES_AND_BACKSLASHES: [&str; 10] = [
    r"title = '\'') OR true --'",
    r"title = '\'",
    r"title = '\\'') OR true --'",
    r"title = 'a''b'",
    r"title LIKE '%\_%' ESCAPE '\'",
    r"title = E'\\'' OR true --'",
    r"title IN ('\', '''', '\''', 'x')",
    r"title = 'x\''' OR true",
    "title = '''''''s1'",
    "title = 'a''''b'",
];

/// Queries whose `params[n]` do not match the `$n` of their where.
pub(crate) const MISMATCHED_PARAMS_QUERIES: [&str; 4] = [
    "table=items&offset=-1&where=id+%3D+%242&params[1]=1&params[2]=2",
    "table=items&offset=-1&where=id+%3D+%241",
    "table=items&offset=-1&params[1]=1",
    "table=items&offset=-1&where=id+%3D+%241&params[2]=1",
];

/// Accepted queries whose params and subset the policy renumbers and re-renders.
pub(crate) const PARAMETERISED_QUERIES: [&str; 2] = [
    "table=items&offset=-1&where=id+%3D+%241+OR+title+%3D+%242\
     &params%5B1%5D=7&params[2]=a%20b",
    "table=items&offset=-1&subset__where=title+ILIKE+%241&subset__params=%7B%221%22%3A%22%25a%25%22%7D\
     &subset__limit=10&subset__offset=5&subset__order_by=id+desc+nulls+last\
     &subset__where_expr=%7B%7D",
];

/// POST bodies (to `table=items&offset=-1`) that smuggle shape keys, or are not a subset.
pub(crate) const SMUGGLING_BODIES: [&str; 9] = [
    r#"{"table":"tenants"}"#,
    r#"{"columns":"internal_note"}"#,
    r#"{"where":"done","secret":"x"}"#,
    r#"["where"]"#,
    "not json",
    r#"{"limit":"ten"}"#,
    r#"{"limit":1}"#,
    // A subset that is not an object is refused, not read as "no subset".
    r#"{"subset":"where"}"#,
    r#"{"subset":null}"#,
];

/// An accepted POST subset body.
pub(crate) const SUBSET_BODY: &str =
    r#"{"where":"done AND title = $1","params":{"1":"x"},"limit":3,"order_by":"id"}"#;

/// Client `where`s in spellings that Postgres reads otherwise than sqlparser did (escape,
/// unicode and dollar-quoted strings, nested comments, unicode-escaped names) and constructs
/// only Postgres has (system columns, catalog casts, `COLLATE`, qualified operators,
/// set-returning functions, subqueries as arrays and rows); see `tests/policy_sql.rs` for how
/// each is refused or forwarded.
pub(crate) const POSTGRES_SPELLINGS: [&str; 22] = [
    r"title = 'a\' OR true --'",
    r"title = E'\'' OR true --'",
    r"title = E'\\'') OR true --'",
    r"title = U&'\0027) OR (true' OR done",
    "title = U&'d!0061t' UESCAPE '!'",
    "title = $$a' OR true --$$",
    "title = $tag$a$$ OR true $tag$",
    "title = $x$'$x$ AND id = $y$0$y$::int",
    "title = 'a' /* /* */ OR true */",
    "U&\"internal\\005fnote\" = 'x'",
    "U&\"t\\0069tle\" = 'x'",
    "ctid = '(0,1)'",
    "xmin::text = '1'",
    "'items'::regclass IS NOT NULL",
    "title COLLATE \"C\" = 'a'",
    "id OPERATOR(pg_catalog.=) 1",
    "generate_series(1, 10) = id",
    "ARRAY(SELECT internal_note FROM items) IS NOT NULL",
    "ROW((SELECT internal_note FROM items LIMIT 1)) = ROW('x')",
    "true UNION SELECT internal_note FROM items",
    "ROW(id, title) = ROW(1, 'a')",
    "date '2020-01-01' IS NOT NULL AND title = N'x'",
];

/// One attack as a request: method, query, body.
#[derive(Debug, Clone)]
pub(crate) struct AttackRequest {
    /// `GET` or `POST`.
    pub(crate) method: http::Method,
    /// The query string, encoded.
    pub(crate) query: String,
    /// The body of a `POST`.
    pub(crate) body: String,
}

fn encoded(text: &str) -> String {
    tower_electric::protocol::query::encode_component(text).into_owned()
}

/// Every attack above as requests to the `items` shape: each client where as `where` and as
/// `subset__where`, each query and body as it is.
pub(crate) fn all_requests() -> Vec<AttackRequest> {
    let get = |query: String| AttackRequest {
        method: http::Method::GET,
        query,
        body: String::new(),
    };
    let post = |body: &str| AttackRequest {
        method: http::Method::POST,
        query: "table=items&offset=-1".to_owned(),
        body: body.to_owned(),
    };
    let mut requests = Vec::new();
    let wheres = STRING_BUILT_TRICKS
        .iter()
        .chain(&SUBQUERIES)
        .chain(&ROW_FILTER_WIDENERS)
        .chain(&QUOTES_AND_BACKSLASHES)
        .chain(&POSTGRES_SPELLINGS);
    for client in wheres {
        for key in ["where", "subset__where"] {
            requests.push(get(format!(
                "table=items&offset=-1&{key}={}",
                encoded(client)
            )));
        }
    }
    for query in HIDDEN_COLUMN_QUERIES
        .iter()
        .chain(&DUPLICATED_KEY_QUERIES)
        .chain(&MISMATCHED_PARAMS_QUERIES)
        .chain(&PARAMETERISED_QUERIES)
    {
        requests.push(get((*query).to_owned()));
    }
    for body in HIDDEN_COLUMN_BODIES.iter().chain(&SMUGGLING_BODIES) {
        requests.push(post(body));
    }
    requests.push(post(SUBSET_BODY));
    requests
}
