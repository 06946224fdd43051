//! Generated client requests: whatever they ask, what goes upstream is the policy's table, the
//! policy's filter ANDed at the top, visible columns only, and params that match placeholders.

use super::*;

const VISIBLE: [&str; 4] = ["id", "tenant_id", "title", "done"];

fn column() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => proptest::sample::select(VISIBLE.to_vec()).prop_map(str::to_owned),
        1 => Just("internal_note".to_owned()),
        1 => Just("items.id".to_owned()),
        1 => Just("\"ID\"".to_owned()),
    ]
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (column(), proptest::sample::select(vec!["=", "<>", ">", "<="]), 0..100i32)
            .prop_map(|(c, op, n)| format!("{c} {op} {n}")),
        4 => column().prop_map(|c| format!("{c} IS NULL")),
        2 => column().prop_map(|c| format!("lower({c}) = 'a'")),
        2 => Just("$1 = title".to_owned()),
        1 => Just("id = $2".to_owned()),
        1 => Just("EXISTS (SELECT 1 FROM tenants)".to_owned()),
        1 => Just("true) OR (true".to_owned()),
        1 => Just("pg_sleep(1) IS NULL".to_owned()),
        1 => Just("done --".to_owned()),
    ]
}

fn where_clause() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

fn client_query() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            6 => proptest::sample::select(vec!["items", "public.items", "Items"]),
            1 => proptest::sample::select(vec!["tenants", "secrets", "\"Items\""]),
        ],
        proptest::option::weighted(0.8, where_clause()),
        prop_oneof![3 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)],
        proptest::option::of(proptest::sample::subsequence(
            vec!["id", "title", "done", "internal_note"],
            0..4,
        )),
        proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "secret",
                    "api_secret",
                    "source_id",
                    "hint",
                    "queryable_columns",
                    "tenant",
                ]),
                "[a-z0-9]{0,6}",
            ),
            0..3,
        ),
    )
        .prop_map(|(table, where_clause, params, columns, extras)| {
            let mut pairs = vec![
                ("table".to_owned(), table.to_owned()),
                ("offset".to_owned(), "-1".to_owned()),
            ];
            if let Some(where_clause) = where_clause {
                pairs.push(("where".into(), where_clause));
            }
            for index in 1..=params {
                pairs.push((format!("params[{index}]"), format!("v{index}")));
            }
            if let Some(columns) = columns.filter(|c| !c.is_empty()) {
                pairs.push(("columns".into(), columns.join(",")));
            }
            for (key, value) in extras {
                if !pairs.iter().any(|(seen, _)| *seen == key) {
                    pairs.push((key.to_owned(), value));
                }
            }
            pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        tower_electric::protocol::query::encode_component(k),
                        tower_electric::protocol::query::encode_component(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_forwarded_request_is_the_policys_shape(query in client_query()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let outcome = runtime.block_on(get(&query, Some("tenant-7")));
        if outcome.forwarded.is_none() {
            prop_assert!(outcome.status.is_client_error(), "{} {}", outcome.status, outcome.body);
            return Ok(());
        }
        prop_assert_eq!(outcome.status, StatusCode::OK);
        let upstream = outcome.upstream();
        let items = TableName::parse("items").unwrap();
        let tenants = TableName::parse("tenants").unwrap();
        let table = upstream.table.clone().unwrap();
        prop_assert!(table == items || table == tenants);
        prop_assert!(upstream.extras.is_empty());
        prop_assert!(upstream.secret.is_none() && upstream.api_secret.is_none() && upstream.source_id.is_none());
        let (visible, policy_filter): (Vec<Identifier>, &str) = if table == items {
            (ids(&VISIBLE), "tenant_id = $1")
        } else {
            (ids(&["id", "name", "keys"]), "id = $1")
        };
        let columns = upstream.columns.clone().unwrap();
        prop_assert!(columns.iter().all(|c| visible.contains(c)), "{:?}", columns);
        let where_text = upstream.where_clause.clone().unwrap();
        let forwarded_where = parse_where(&where_text);
        let client_count = upstream.params.len() - 1;
        let expected_policy =
            parse_where(&policy_filter.replace("$1", &format!("${}", 1 + client_count)));
        if forwarded_where == expected_policy {
            prop_assert_eq!(client_count, 0);
        } else {
            let (client_part, policy_part) = split_and(&where_text);
            prop_assert_eq!(policy_part, expected_policy);
            for name in column_names(&client_part) {
                prop_assert!(visible.iter().any(|c| c.as_str() == name), "{} in {}", name, where_text);
            }
        }
        prop_assert_eq!(placeholder_numbers(&forwarded_where), (1..=upstream.params.len()).collect::<Vec<_>>());
        prop_assert_eq!(upstream.params.last().map(String::as_str), Some("tenant-7"));
    }
}
