use super::*;
use crate::protocol::SqlLimits;

fn visible() -> Vec<Identifier> {
    ["id", "title", "done", "Mixed"]
        .iter()
        .map(|name| Identifier::new(*name).unwrap())
        .collect()
}

fn check_with(
    text: &str,
    param_count: usize,
    visible: Option<&[Identifier]>,
) -> Result<(), SqlError> {
    let rules = ClientRules {
        visible,
        param_count,
        max_depth: 32,
    };
    check_client(&SqlExpr::parse(text, SqlLimits::default())?, &rules)
}

fn check(text: &str, param_count: usize) -> Result<(), SqlError> {
    check_with(text, param_count, Some(&visible()))
}

#[test]
fn allowed_client_expressions_pass() {
    for text in [
        "id = 1",
        "ID = 1 AND \"Mixed\" IS NOT NULL",
        "title ILIKE '%a%' OR NOT done",
        "id IN (1, 2, 3) AND id BETWEEN 1 AND 9",
        "lower(title) = 'a' AND coalesce(done, false)",
        "id::text = '1' AND CAST(id AS bigint) > 0",
        "id = ANY(ARRAY[1, 2])",
        "CASE WHEN done THEN 1 ELSE 0 END = 1",
        "(id, title) = (1, 'a')",
        "title = E'a\\'b'",
        "title LIKE '%\\_%' ESCAPE '\\' AND title NOT ILIKE 'x%'",
        "title SIMILAR TO 'a%' AND title IS DISTINCT FROM 'b'",
        "done IS NOT TRUE AND done IS UNKNOWN AND id IS NOT NULL",
        "id::varchar(10)[] IS NOT NULL AND id::double precision > 1.5",
        "-id < 0 AND id % 2 = 0 AND title || 'x' <> 'y' AND title != 'z'",
        "CASE id WHEN 1 THEN 'a' END = title",
    ] {
        assert_eq!(check(text, 0), Ok(()), "{text}");
    }
}

/// What Postgres reads as the very tree of something already allowed: allowed too, where
/// the old parser refused it.
#[test]
fn other_spellings_of_allowed_trees_are_allowed() {
    for text in [
        "title = $$a' OR true --$$",
        "title = $x$a$$b$x$",
        "title = U&'d\\0061t\\+000061'",
        "title = N'abc'",
        "ROW(id, title) = (1, 'a')",
        "id::pg_catalog.int4 = 1 AND id::\"int4\" = 1",
        "date '2020-01-01' IS NOT NULL AND interval '1' day IS NOT NULL",
        "title LIKE pg_catalog.like_escape('a', 'b')",
    ] {
        assert_eq!(check(text, 0), Ok(()), "{text}");
    }
}

#[test]
fn subqueries_are_refused_wherever_they_are() {
    for text in [
        "EXISTS (SELECT 1 FROM secrets)",
        "id IN (SELECT id FROM other)",
        "id = (SELECT max(id) FROM other)",
        "lower((SELECT name FROM other LIMIT 1)) = 'a'",
        "id = ANY(SELECT id FROM other)",
        "NOT EXISTS (SELECT 1)",
        "(SELECT 1) = 1",
        "ARRAY(SELECT id FROM other) IS NOT NULL",
        "ROW((SELECT 1), 2) = (1, 2)",
        "id = ALL(SELECT 1)",
        "CASE WHEN done THEN (SELECT 1) END = 1",
        "coalesce((SELECT 1), 2) = 1",
        "title LIKE (SELECT 'a')",
    ] {
        assert_eq!(check(text, 0), Err(SqlError::Subquery), "{text}");
    }
}

#[test]
fn hidden_and_qualified_columns_are_refused() {
    assert_eq!(
        check("internal_note = 'x'", 0),
        Err(SqlError::HiddenColumn("internal_note".into()))
    );
    assert_eq!(
        check("\"ID\" = 1", 0),
        Err(SqlError::HiddenColumn("ID".into()))
    );
    assert_eq!(
        check("mixed = 1", 0),
        Err(SqlError::HiddenColumn("mixed".into()))
    );
    assert_eq!(
        check("lower(internal_note) = 'x'", 0),
        Err(SqlError::HiddenColumn("internal_note".into()))
    );
    // A unicode-escaped name is the name it spells.
    assert_eq!(
        check("U&\"secr\\0065t\" = 1", 0),
        Err(SqlError::HiddenColumn("secret".into()))
    );
    assert_eq!(check("U&\"t\\0069tle\" = 'a'", 0), Ok(()));
    assert_eq!(check("items.id = 1", 0), Err(SqlError::QualifiedColumn));
    assert_eq!(check("other.secret = 1", 0), Err(SqlError::QualifiedColumn));
    assert_eq!(
        check("public.items.id = 1", 0),
        Err(SqlError::QualifiedColumn)
    );
    assert_eq!(check("items.* IS NULL", 0), Err(SqlError::QualifiedColumn));
}

/// Every table has them, so a policy that shows every column still must not let a client
/// filter on the row's physical place or its transaction ids.
#[test]
fn system_columns_are_refused_even_when_every_column_is_visible() {
    for text in [
        "ctid = '(0,1)'",
        "xmin::text = '1'",
        "xmax = 0",
        "cmin = 0 OR cmax = 0",
        "tableoid = 1",
        "\"ctid\" IS NOT NULL",
    ] {
        assert_eq!(
            check_with(text, 0, None),
            Err(SqlError::NotAllowed("a system column")),
            "{text}"
        );
    }
    assert_eq!(check_with("anything = 1", 0, None), Ok(()));
}

#[test]
fn functions_casts_and_operators_outside_the_allow_list_are_refused() {
    assert_eq!(
        check("pg_sleep(10) IS NULL", 0),
        Err(SqlError::FunctionNotAllowed("pg_sleep".into()))
    );
    assert_eq!(
        check("current_setting('x') = 'y'", 0),
        Err(SqlError::FunctionNotAllowed("current_setting".into()))
    );
    assert!(matches!(
        check("pg_catalog.lower(title) = 'a'", 0),
        Err(SqlError::FunctionNotAllowed(_))
    ));
    assert!(matches!(
        check("count(id) OVER () > 1", 0),
        Err(SqlError::FunctionNotAllowed(_))
    ));
    assert!(matches!(
        check("lower(title) FILTER (WHERE done) = 'a'", 0),
        Err(SqlError::NotAllowed(_))
    ));
    assert!(matches!(
        check("'secrets'::regclass IS NOT NULL", 0),
        Err(SqlError::NotAllowed(_))
    ));
    assert!(matches!(
        check("title::my_type IS NOT NULL", 0),
        Err(SqlError::NotAllowed(_))
    ));
    assert!(matches!(
        check("id OPERATOR(pg_catalog.=) 1", 0),
        Err(SqlError::NotAllowed(_))
    ));
}

/// The constructs Postgres has that the old parser read otherwise or not at all.
#[test]
fn postgres_only_constructs_are_refused() {
    for (text, error) in [
        (
            "generate_series(1, 2) = 1",
            SqlError::FunctionNotAllowed("generate_series".into()),
        ),
        (
            "unnest(ARRAY[1]) = 1",
            SqlError::FunctionNotAllowed("unnest".into()),
        ),
        (
            "nullif(id, 1) IS NULL",
            SqlError::FunctionNotAllowed("nullif".into()),
        ),
        (
            "greatest(id, 1) = 1",
            SqlError::FunctionNotAllowed("greatest".into()),
        ),
        ("title COLLATE \"C\" = 'a'", SqlError::NotAllowed("COLLATE")),
        (
            "title = 'a' COLLATE pg_catalog.\"default\"",
            SqlError::NotAllowed("COLLATE"),
        ),
        (
            "title::regclass IS NULL",
            SqlError::NotAllowed("a cast to this type"),
        ),
        (
            "title::pg_catalog.regproc IS NULL",
            SqlError::NotAllowed("a cast to this type"),
        ),
        (
            "title::public.text IS NULL",
            SqlError::NotAllowed("a cast to this type"),
        ),
        (
            "title::text COLLATE \"C\" IS NULL",
            SqlError::NotAllowed("COLLATE"),
        ),
        (
            "id OPERATOR(pg_catalog.=) 1",
            SqlError::NotAllowed("a custom operator"),
        ),
        (
            "id OPERATOR(public.===) 1",
            SqlError::NotAllowed("a custom operator"),
        ),
        (
            "id <-> 1 IS NULL",
            SqlError::NotAllowed("a custom operator"),
        ),
        ("|/ id = 1", SqlError::NotAllowed("this unary operator")),
        (
            "id = ANY(ARRAY[1]) AND id OPERATOR(pg_catalog.<) ANY(ARRAY[2])",
            SqlError::NotAllowed("a custom operator"),
        ),
        (
            "current_user = 'a'",
            SqlError::NotAllowed("a SQL value function (CURRENT_USER, CURRENT_DATE, ...)"),
        ),
        (
            "(ARRAY[id])[1] = 1",
            SqlError::NotAllowed("subscripts and field selection"),
        ),
        (
            "(ROW(id, 1)).f1 = 1",
            SqlError::NotAllowed("subscripts and field selection"),
        ),
        (
            "B'101' IS NOT NULL",
            SqlError::NotAllowed("this kind of literal"),
        ),
        (
            "X'1F' IS NOT NULL",
            SqlError::NotAllowed("this kind of literal"),
        ),
        ("lower(title ORDER BY id) = 'a'", NOT_PLAIN_CALL),
        ("lower(DISTINCT title) = 'a'", NOT_PLAIN_CALL),
        ("lower(VARIADIC ARRAY[title]) = 'a'", NOT_PLAIN_CALL),
        ("lower(x => title) = 'a'", NOT_PLAIN_CALL),
        ("title IS JSON", ANY_OTHER),
        (
            "id = 1 AND title AT TIME ZONE 'UTC' IS NULL",
            SqlError::FunctionNotAllowed("pg_catalog.timezone".into()),
        ),
    ] {
        assert_eq!(check(text, 0), Err(error), "{text}");
    }
}

#[test]
fn placeholders_must_match_the_values_given() {
    assert_eq!(check("id = $1 AND title = $2", 2), Ok(()));
    assert_eq!(check("id = $2", 2), Err(SqlError::UnusedParam(1)));
    assert_eq!(check("id = $3", 2), Err(SqlError::MissingParam(3)));
    assert_eq!(check("id = $1", 0), Err(SqlError::MissingParam(1)));
    assert_eq!(check("id = $01", 1), Err(SqlError::BadPlaceholder));
    assert!(check("id = ?", 1).is_err());
}

/// Postgres keeps an `AND` chain flat (one node of 40 arguments, allowed) but nests an
/// operator chain to the left: that is the tree the depth limit bounds.
#[test]
fn tree_depth_is_limited_even_for_flat_chains() {
    let chain = vec!["id = 1"; 40].join(" AND ");
    assert_eq!(check(&chain, 0), Ok(()));
    let chain = format!("{} = 1", vec!["id"; 40].join(" + "));
    assert_eq!(check(&chain, 0), Err(SqlError::TooDeep));
}

#[test]
fn order_by_names_only_visible_columns() {
    let columns = visible();
    let order = SqlOrderBy::parse("id DESC NULLS LAST, \"Mixed\"", SqlLimits::default()).unwrap();
    assert_eq!(check_order_by(&order, Some(&columns)), Ok(()));
    let hidden = SqlOrderBy::parse("internal_note", SqlLimits::default()).unwrap();
    assert_eq!(
        check_order_by(&hidden, Some(&columns)),
        Err(SqlError::HiddenColumn("internal_note".into()))
    );
    let system = SqlOrderBy::parse("id, ctid", SqlLimits::default()).unwrap();
    assert_eq!(
        check_order_by(&system, None),
        Err(SqlError::NotAllowed("a system column"))
    );
}
