//! Issue 4: the property that no principal ever receives another tenant's row or a hidden
//! column.

use super::*;

const HIDDEN_NOTES: [&str; 5] = [
    "ask legal first",
    "budget approved",
    "keep it quiet",
    "two are late",
    "rent goes up 5%",
];

/// One generated where fragment: its text with `$?` for each placeholder, and their values.
type Fragment = (String, Vec<String>);

fn atom() -> impl Strategy<Value = Fragment> {
    let plain = |text: &'static str| Just((text.to_owned(), Vec::new()));
    prop_oneof![
        6 => prop_oneof![
            plain("done"),
            plain("NOT done"),
            plain("true"),
            plain("1 = 1"),
            plain("tenant_id = 'globex'"),
            plain("tenant_id <> 'acme'"),
            plain("tenant_id IN ('acme', 'globex')"),
            plain("title IS NOT NULL"),
        ],
        4 => (0..6i64).prop_map(|n| (format!("id > {n}"), Vec::new())),
        4 => prop_oneof![
            proptest::sample::select(vec!["acme", "globex", "nobody"])
                .prop_map(|t| ("tenant_id = $?".to_owned(), vec![t.to_owned()])),
            (0..6i64).prop_map(|n| ("id <= $?".to_owned(), vec![n.to_string()])),
            proptest::sample::select(vec!["Draft the launch plan", "Renew the lease", "x"])
                .prop_map(|t| ("title <> $?".to_owned(), vec![t.to_owned()])),
        ],
        1 => prop_oneof![
            plain("internal_note IS NULL"),
            plain("internal_note = 'x'"),
            plain("id IN (SELECT id FROM items)"),
            plain("items.id = 1"),
            plain("lower(title) = 'x'"),
        ],
    ]
}

fn where_fragment() -> impl Strategy<Value = Fragment> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|((a, pa), (b, pb))| (format!("{a} AND {b}"), [pa, pb].concat())),
            (inner.clone(), inner.clone())
                .prop_map(|((a, pa), (b, pb))| (format!("({a}) OR {b}"), [pa, pb].concat())),
            inner.prop_map(|(a, pa)| (format!("NOT ({a})"), pa)),
        ]
    })
}

/// A fragment's `$?` numbered `$1..$n` in order.
fn numbered((text, params): Fragment) -> (String, Vec<String>) {
    let mut out = String::new();
    for (index, piece) in text.split("$?").enumerate() {
        if index > 0 {
            out.push_str(&format!("${index}"));
        }
        out.push_str(piece);
    }
    (out, params)
}

#[derive(Debug, Clone)]
struct ClientCase {
    tenant: &'static str,
    method: Method,
    pairs: Vec<(String, String)>,
    body: String,
    live: bool,
}

fn client_case() -> impl Strategy<Value = ClientCase> {
    let table = prop_oneof![
        8 => proptest::sample::select(vec!["items", "public.items", "Items", "\"public\".\"items\""]),
        3 => Just("tenants"),
        1 => proptest::sample::select(vec!["\"Items\"", "secrets", "pg_catalog.pg_user"]),
    ];
    let params_shift = prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)];
    let columns = proptest::option::weighted(
        0.3,
        proptest::sample::subsequence(
            vec!["id", "tenant_id", "title", "done", "internal_note", "name"],
            1..4,
        ),
    );
    let extras = proptest::collection::vec(
        (
            proptest::sample::select(vec![
                "secret",
                "api_secret",
                "source_id",
                "queryable_columns",
                "tenant_id",
                "replica",
                "log",
                "hint",
            ]),
            proptest::sample::select(vec![
                "globex",
                "acme",
                "full",
                "changes_only",
                "internal_note",
                "x",
            ]),
        ),
        0..3,
    );
    let subset = proptest::option::weighted(
        0.3,
        (
            proptest::option::of(where_fragment()),
            proptest::option::of(proptest::sample::select(vec![
                "id DESC",
                "title",
                "internal_note",
            ])),
            proptest::option::of(0..4u8),
        ),
    );
    let smuggled = proptest::option::weighted(
        0.3,
        proptest::sample::select(vec![
            ("table", "tenants"),
            ("columns", "id,internal_note"),
            ("params[1]", "globex"),
            ("where", "true"),
        ]),
    );
    (
        proptest::sample::select(vec!["acme", "globex"]),
        prop_oneof![4 => Just(Method::GET), 1 => Just(Method::POST)],
        table,
        proptest::sample::select(vec!["-1", "-1", "now"]),
        proptest::option::weighted(0.7, where_fragment()),
        params_shift,
        columns,
        extras,
        subset,
        smuggled,
        any::<bool>(),
    )
        .prop_map(
            |(
                tenant,
                method,
                table,
                offset,
                where_clause,
                shift,
                columns,
                extras,
                subset,
                smuggled,
                live,
            )| {
                let mut pairs: Vec<(String, String)> = vec![
                    ("table".into(), table.into()),
                    ("offset".into(), offset.into()),
                ];
                if let Some(fragment) = where_clause {
                    let (text, mut params) = numbered(fragment);
                    match shift {
                        -1 => {
                            params.pop();
                        }
                        1 => params.push("globex".into()),
                        _ => {}
                    }
                    pairs.push(("where".into(), text));
                    for (index, value) in params.into_iter().enumerate() {
                        pairs.push((format!("params[{}]", index + 1), value));
                    }
                }
                if let Some(columns) = columns {
                    pairs.push(("columns".into(), columns.join(",")));
                }
                for (key, value) in extras {
                    if !pairs.iter().any(|(seen, _)| seen == key) {
                        pairs.push((key.into(), value.into()));
                    }
                }
                let mut body = serde_json::Map::new();
                if let Some((subset_where, order_by, limit)) = subset {
                    let mut subset_pairs: Vec<(&str, Value)> = Vec::new();
                    if let Some(fragment) = subset_where {
                        let (text, params) = numbered(fragment);
                        subset_pairs.push(("where", text.into()));
                        if !params.is_empty() {
                            let params: serde_json::Map<String, Value> = params
                                .into_iter()
                                .enumerate()
                                .map(|(index, value)| ((index + 1).to_string(), value.into()))
                                .collect();
                            subset_pairs.push(("params", params.into()));
                        }
                    }
                    if let Some(order_by) = order_by {
                        subset_pairs.push(("order_by", order_by.into()));
                    }
                    if let Some(limit) = limit {
                        subset_pairs.push(("limit", limit.into()));
                    }
                    for (key, value) in subset_pairs {
                        if method == Method::POST {
                            body.insert(key.into(), value);
                        } else {
                            let text = match value {
                                Value::String(text) => text,
                                other => other.to_string(),
                            };
                            pairs.push((format!("subset__{key}"), text));
                        }
                    }
                }
                if let Some((key, value)) = smuggled {
                    body.insert(key.into(), value.into());
                }
                ClientCase {
                    tenant,
                    body: if method == Method::POST {
                        Value::Object(body).to_string()
                    } else {
                        String::new()
                    },
                    method,
                    pairs,
                    live,
                }
            },
        )
}

fn rendered(pairs: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    query(&pairs)
}

/// Every row in `reply` is the tenant's, and no hidden column or note is in it.
fn assert_only_own_rows(reply: &Reply, tenant: &str) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(&reply.body);
    for note in HIDDEN_NOTES {
        prop_assert!(!text.contains(note), "{} leaked: {}", note, text);
    }
    prop_assert!(!text.contains(SECRET), "secret leaked: {}", text);
    if reply.status != StatusCode::OK {
        prop_assert!(reply.status.is_client_error(), "{} {}", reply.status, text);
        return Ok(());
    }
    let body = reply
        .json()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let messages = match &body {
        Value::Array(messages) => messages.clone(),
        Value::Object(subset) => subset["data"].as_array().cloned().unwrap_or_default(),
        other => return Err(TestCaseError::fail(format!("not a shape log: {other}"))),
    };
    for message in &messages {
        let relation = &message["headers"]["relation"];
        for row in ["value", "old_value"]
            .iter()
            .filter_map(|key| message.get(*key))
        {
            let row = row.as_object().unwrap();
            prop_assert!(!row.contains_key("internal_note"), "{}", message);
            if let Some(owner) = row.get("tenant_id") {
                prop_assert_eq!(owner.as_str(), Some(tenant), "{}", message);
            }
            if relation == &json!(["public", "tenants"]) {
                if let Some(id) = row.get("id") {
                    prop_assert_eq!(id.as_str(), Some(tenant), "{}", message);
                }
            }
        }
    }
    Ok(())
}

/// What reached the stand-in is the policy's: one secret, the server's; visible columns only.
fn assert_stand_in_saw_only_the_policys_shapes(
    electric: &ElectricStandIn,
) -> Result<(), TestCaseError> {
    for received in electric.requests() {
        let secrets: Vec<_> = received
            .query
            .iter()
            .filter(|(key, _)| key == "secret" || key == "api_secret" || key == "source_id")
            .collect();
        prop_assert_eq!(secrets.len(), 1, "{:?}", received.query);
        prop_assert_eq!(received.query_value("secret"), Some(SECRET));
        let table = received.query_value("table");
        prop_assert!(
            table == Some("public.items") || table == Some("public.tenants"),
            "{:?}",
            received.query
        );
        for (key, value) in &received.query {
            prop_assert!(!value.contains("internal_note"), "{}={}", key, value);
        }
        if let Some(body) = &received.body {
            prop_assert!(!String::from_utf8_lossy(body).contains("internal_note"));
        }
    }
    Ok(())
}

/// Changes of both tenants after the snapshot, so that a live answer has rows to leak.
fn change_both_tenants(electric: &ElectricStandIn) {
    for (id, tenant) in [("100", "acme"), ("101", "globex")] {
        electric
            .insert(
                "items",
                Row::new()
                    .with("id", id)
                    .with("tenant_id", tenant)
                    .with("title", "new")
                    .with("done", "false")
                    .with("internal_note", "rent goes up 5%"),
            )
            .unwrap();
    }
    electric
        .update(
            "items",
            Row::from([("id", "4"), ("title", "Audit the vendors again")]),
        )
        .unwrap();
    electric
        .update("items", Row::from([("id", "2"), ("done", "false")]))
        .unwrap();
}

/// One generated case against `electric`: the first answer, and a live one after changes of
/// both tenants, hold only the principal's rows, and the stand-in saw only the policy's shapes.
fn check_case(electric: &ElectricStandIn, case: &ClientCase) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let first = through_policy(
            electric,
            case.method.clone(),
            &rendered(&case.pairs),
            Some(case.tenant),
            &case.body,
        )
        .await;
        assert_only_own_rows(&first, case.tenant)?;
        let is_log = case.method == Method::GET
            && !case
                .pairs
                .iter()
                .any(|(key, _)| key.starts_with("subset__"));
        if case.live && is_log && first.status == StatusCode::OK {
            change_both_tenants(electric);
            let mut pairs: Vec<(String, String)> = case
                .pairs
                .iter()
                .filter(|(key, _)| key != "offset")
                .cloned()
                .collect();
            pairs.push((
                "offset".into(),
                first.header("electric-offset").unwrap().into(),
            ));
            pairs.push((
                "handle".into(),
                first.header("electric-handle").unwrap().into(),
            ));
            pairs.push(("live".into(), "true".into()));
            pairs.push(("cursor".into(), String::new()));
            let live = through_policy(
                electric,
                Method::GET,
                &rendered(&pairs),
                Some(case.tenant),
                "",
            )
            .await;
            prop_assert_eq!(live.status, StatusCode::OK, "{:?}", live.body);
            assert_only_own_rows(&live, case.tenant)?;
        }
        assert_stand_in_saw_only_the_policys_shapes(electric)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_principal_never_receives_another_tenants_row_or_a_hidden_column(case in client_case()) {
        check_case(&standin(Duration::from_millis(20)), &case)?;
    }
}

/// The same property with the stand-in on Postgres: one cluster, a stand-in (and so a
/// database) per case; fewer cases, each creates its tables.
#[cfg(feature = "postgres")]
#[test]
fn on_postgres_a_principal_never_receives_another_tenants_row_or_a_hidden_column() {
    let cluster =
        std::sync::Arc::new(tower_electric::testing::postgres::TestCluster::start().unwrap());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&client_case(), |case| {
        let electric = standin_builder(Duration::from_millis(20))
            .postgres(std::sync::Arc::clone(&cluster))
            .build();
        check_case(&electric, &case)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}
