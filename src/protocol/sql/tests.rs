use super::*;

fn parse(text: &str) -> Result<SqlExpr, SqlError> {
    SqlExpr::parse(text, SqlLimits::default())
}

fn order(text: &str) -> Result<SqlOrderBy, SqlError> {
    SqlOrderBy::parse(text, SqlLimits::default())
}

#[test]
fn one_expression_parses_and_renders() {
    let expr = parse("id >= $1 AND title ILIKE '%a%'").unwrap();
    assert_eq!(expr.to_string(), "id >= $1 AND title ILIKE '%a%'");
    assert_eq!(expr, parse("id>=$1   and title ilike '%a%'").unwrap());
    assert_ne!(expr, parse("$1 <= id AND title ILIKE '%a%'").unwrap());
}

#[test]
fn injection_shapes_are_refused() {
    assert_eq!(parse("true) OR (true"), Err(SqlError::TrailingInput));
    assert_eq!(parse("x = 1 --"), Err(SqlError::Comment));
    assert_eq!(parse("x = 1 /* */ OR true"), Err(SqlError::Comment));
    assert_eq!(
        parse("x = 1; drop table items"),
        Err(SqlError::StatementSeparator)
    );
    // Postgres reports a syntax error here (sqlparser stopped after `x = 1`).
    assert_eq!(parse("x = 1 x = 2"), Err(SqlError::Syntax));
    assert_eq!(parse("   "), Err(SqlError::Empty));
    assert_eq!(parse("x = '1"), Err(SqlError::Syntax));
}

/// Text that makes `SELECT 1 WHERE <text>` more than one SELECT with one WHERE.
#[test]
fn text_that_extends_the_statement_is_refused() {
    for text in [
        "true UNION SELECT secret FROM keys",
        "true UNION ALL (SELECT 1 WHERE true)",
        "true INTERSECT SELECT 1",
        "true GROUP BY 1",
        "true HAVING true",
        "true ORDER BY 1",
        "true LIMIT 1",
        "true OFFSET 1",
        "true FOR UPDATE",
        "true WINDOW w AS ()",
        "true) UNION (SELECT 1",
    ] {
        assert_eq!(parse(text), Err(SqlError::TrailingInput), "{text}");
    }
    for text in [
        "id LIMIT 1",
        "id FOR UPDATE",
        "id) UNION (SELECT 1",
        "id OFFSET 2",
    ] {
        assert_eq!(order(text), Err(SqlError::TrailingInput), "{text}");
    }
}

/// What Postgres's scanner reads differently from the old tokenizer: nested comments (`/* /*
/// */ */` is one comment) and comments that only Postgres sees.
#[test]
fn comments_are_found_the_way_postgres_finds_them() {
    for text in [
        "x = 1 /* /* */ OR true */",
        "x = 1 /* /* */ */ OR true",
        "x = 1 /**/",
        "x = 1 -- /*",
        "x = 1 --",
        // A backslash is a plain character in a standard string: the string ends after it,
        // and the rest is a comment.
        r"title = 'a\' OR true --'",
    ] {
        assert_eq!(parse(text), Err(SqlError::Comment), "{text}");
    }
    // An unterminated comment does not scan at all.
    assert_eq!(parse("x = 1 /* /* */"), Err(SqlError::Syntax));
}

#[test]
fn comment_markers_inside_strings_are_data() {
    for text in [
        "title = '-- not a comment /* */'",
        "title = $$-- not a comment$$",
        "title = E'\\' -- still data'",
        "\"a--b\" = 1",
    ] {
        assert!(parse(text).is_ok(), "{text}");
    }
}

/// Postgres reads `$01` as `$1`; the client's `params[1]` is for `$1` as written.
#[test]
fn placeholders_must_be_written_canonically() {
    assert_eq!(parse("id = $01"), Err(SqlError::BadPlaceholder));
    assert_eq!(parse("id = $0"), Err(SqlError::BadPlaceholder));
    let expr = parse("id = $2 OR id = $1 OR id = $2").unwrap();
    assert_eq!(
        expr.placeholders().unwrap().into_iter().collect::<Vec<_>>(),
        [1, 2]
    );
}

/// Every string spelling Postgres has is one string value in its tree, sent in one spelling
/// that reads back as the same value.
#[test]
fn strings_are_sent_in_a_spelling_that_reads_back_the_same() {
    for (text, sent) in [
        ("title = 'It''s'", "title = 'It''s'"),
        (r"title = E'a\'b'", "title = 'a''b'"),
        (
            r"title = 'x\'') OR true --'",
            r"title = E'x\\'') OR true --'",
        ),
        (r"title = E'\\'' OR true --'", r"title = E'\\'' OR true --'"),
        ("title = 'a''''b'", "title = 'a''''b'"),
        ("'''''''s1' = title", "'''''''s1' = title"),
        ("title = $$a' OR true --$$", "title = 'a'' OR true --'"),
        ("title = $tag$a$$b'$tag$", "title = 'a$$b'''"),
        (r"title = U&'d\0061t\+000061'", "title = 'data'"),
        ("title = U&'d!0061t' UESCAPE '!'", "title = 'dat'"),
    ] {
        let expr = parse(text).unwrap();
        assert_eq!(expr.to_sql().as_deref(), Ok(sent), "{text}");
        assert_eq!(parse(sent).unwrap(), expr, "{text}");
    }
}

/// Quoted names, with `""` and unicode escapes, are what Postgres makes of them.
#[test]
fn quoted_names_read_back_as_themselves() {
    let expr = parse("\"a\"\"\"\"b\" = 1 AND U&\"d\\0061ta\" = 2 AND \"Ünï\" = 3").unwrap();
    let sent = expr.to_sql().unwrap();
    assert_eq!(sent, "\"a\"\"\"\"b\" = 1 AND data = 2 AND \"Ünï\" = 3");
    let list = order("\"a\"\"\"\"b\" DESC, U&\"d\\0061ta\"").unwrap();
    assert_eq!(list.to_sql().as_deref(), Ok("\"a\"\"\"\"b\" DESC, data"));
    let columns: Vec<_> = list.keys().map(|key| key.column).collect();
    assert_eq!(columns, ["a\"\"b", "data"]);
}

#[test]
fn composition_keeps_both_sides_whole_and_shifts_the_second() {
    let client = parse("id = $1 OR title = $2").unwrap();
    let mut policy = parse("tenant_id = $1").unwrap();
    policy.shift_placeholders(2).unwrap();
    let composed = client.and(policy);
    let sent = composed.to_sql().unwrap();
    assert_eq!(sent, "(id = $1 OR title = $2) AND tenant_id = $3");
    assert_eq!(
        composed
            .placeholders()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(parse(&sent).unwrap(), composed);
}

/// Postgres reads `a AND b AND (c)` as one AND of three; the composed tree is that tree, so it
/// reads back as itself, and a row filter that is itself an AND stays one argument.
#[test]
fn composition_builds_the_tree_postgres_reads() {
    let client = parse("id = 1 AND done").unwrap();
    let policy = parse("tenant_id = $1 AND NOT deleted").unwrap();
    let composed = client.and(policy);
    let sent = composed.to_sql().unwrap();
    assert_eq!(sent, "id = 1 AND done AND (tenant_id = $1 AND NOT deleted)");
    assert_eq!(parse(&sent).unwrap(), composed);
    let composed = parse("NOT done").unwrap().and(parse("a OR b").unwrap());
    assert_eq!(composed.to_sql().as_deref(), Ok("NOT done AND (a OR b)"));
}

#[test]
fn a_row_filters_subqueries_are_renumbered_too() {
    let mut filter = parse(
        "owner = $1 OR id IN (SELECT item FROM shares WHERE member = $1 AND $2 = ANY(roles))",
    )
    .unwrap();
    assert!(filter.renumbers_fully());
    filter.shift_placeholders(3).unwrap();
    assert_eq!(
        filter.to_sql().as_deref(),
        Ok("owner = $4 OR id IN (SELECT item FROM shares WHERE member = $4 AND $5 = ANY(roles))")
    );
}

#[test]
fn order_by_accepts_columns_with_direction_only() {
    let list = order("id DESC NULLS LAST, \"Mixed\", Title ASC NULLS FIRST").unwrap();
    assert_eq!(
        list.to_string(),
        "id DESC NULLS LAST, \"Mixed\", title ASC NULLS FIRST"
    );
    assert_eq!(list.to_sql(), Ok(list.to_string()));
    let keys: Vec<_> = list.keys().collect();
    assert_eq!(
        keys,
        [
            OrderKey {
                column: "id",
                descending: true,
                nulls_first: Some(false)
            },
            OrderKey {
                column: "Mixed",
                descending: false,
                nulls_first: None
            },
            OrderKey {
                column: "title",
                descending: false,
                nulls_first: Some(true)
            },
        ]
    );
    for text in [
        "lower(title)",
        "id USING <",
        "(SELECT 1)",
        "1",
        "id; drop",
        "id --",
        "id COLLATE \"C\"",
    ] {
        assert!(order(text).is_err(), "{text}");
    }
    assert_eq!(order("items.id"), Err(SqlError::QualifiedColumn));
}

#[test]
fn limits_are_enforced() {
    let long = format!("x = '{}'", "a".repeat(5000));
    assert_eq!(parse(&long), Err(SqlError::TooLong(4096)));
    let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(parse(&deep), Err(SqlError::TooDeep));
    // Deep without a parenthesis: Postgres nests `1 + 1 + ...` to the left; the protobuf
    // reader stops it.
    let chain = format!("1{} = 1", " + 1".repeat(500));
    assert_eq!(parse(&chain), Err(SqlError::TooDeep));
}

/// Trees are compared without their text positions, and only those: a string that looks like
/// a position field is still data.
#[test]
fn trees_compare_without_positions_only() {
    assert_eq!(parse("id=1").unwrap(), parse("  id   =   1").unwrap());
    assert_ne!(
        parse(r#"title = '"location":1'"#).unwrap(),
        parse(r#"title = '"location":2'"#).unwrap()
    );
    assert_ne!(
        parse(r#"title = 'a\",\"location\":1'"#).unwrap(),
        parse(r#"title = 'a\",\"location\":2'"#).unwrap()
    );
    assert_ne!(
        parse("id IN (1, 2)").unwrap(),
        parse("id IN (1, 3)").unwrap()
    );
    assert_eq!(
        parse("id IN (1,2)").unwrap(),
        parse("id IN ( 1 , 2 )").unwrap()
    );
}
