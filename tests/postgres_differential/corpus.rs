//! The corpus: the attack cases and requests generated from a fixed seed.

use super::*;

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
pub(crate) fn corpus() -> Vec<Case> {
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
