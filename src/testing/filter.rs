//! A shape's row filter, evaluated by the stand-in's own evaluator (`eval.rs`) or, in its
//! Postgres mode, by Postgres (`pg.rs`), and the subset snapshot built on it.

#[cfg(feature = "postgres")]
use std::sync::Arc;

use crate::protocol::{SqlExpr, SqlLimits, SubsetParams, TableName};

use super::eval::{Filter, OrderBy};
#[cfg(feature = "postgres")]
use super::pg::{PgFilter, PgWorker, Select};
use super::store::{ColumnDef, Row};

/// The stand-in's Postgres, when it has one.
#[cfg(feature = "postgres")]
pub(crate) type PgHandle = Option<Arc<PgWorker>>;
/// Without the `postgres` feature there is never one.
#[cfg(not(feature = "postgres"))]
pub(crate) type PgHandle = Option<std::convert::Infallible>;

/// Which rows a shape holds.
#[derive(Debug, Clone)]
pub(crate) enum ShapeFilter {
    Eval(Filter),
    #[cfg(feature = "postgres")]
    Postgres(PgFilter),
}

impl Default for ShapeFilter {
    fn default() -> Self {
        Self::Eval(Filter::default())
    }
}

impl ShapeFilter {
    /// The filter of a shape's `where` (already parsed as `expr`) over `columns`. The error
    /// is the message for the `where` field.
    pub(crate) fn compile(
        postgres: &PgHandle,
        table: &TableName,
        columns: &[ColumnDef],
        text: &str,
        expr: &SqlExpr,
        params: &[String],
    ) -> Result<Self, String> {
        #[cfg(feature = "postgres")]
        if let Some(worker) = postgres {
            let filter = PgFilter {
                worker: Arc::clone(worker),
                select: Select {
                    table: table.clone(),
                    exposed: columns.iter().map(|c| c.name.clone()).collect(),
                    where_clause: Some(text.to_owned()),
                    params: params.to_vec(),
                    order_by: None,
                    limit: None,
                    offset: None,
                },
            };
            // Over no rows: Postgres parses, types and binds the clause.
            filter.keep(&[])?;
            return Ok(Self::Postgres(filter));
        }
        #[cfg(not(feature = "postgres"))]
        let _ = (postgres, table, text);
        Filter::compile(expr, columns, params).map(Self::Eval)
    }

    pub(crate) fn matches(&self, row: &Row) -> bool {
        match self {
            Self::Eval(filter) => filter.matches(row),
            #[cfg(feature = "postgres")]
            Self::Postgres(filter) => filter.keep(&[row]).is_ok_and(|kept| kept == [0]),
        }
    }

    /// The rows of `rows` the filter keeps, in their order.
    pub(crate) fn keep<'a>(&self, rows: &'a [Row]) -> Vec<&'a Row> {
        match self {
            Self::Eval(filter) => rows.iter().filter(|row| filter.matches(row)).collect(),
            #[cfg(feature = "postgres")]
            Self::Postgres(filter) => {
                let rows: Vec<&Row> = rows.iter().collect();
                match filter.keep(&rows) {
                    Ok(kept) => kept
                        .into_iter()
                        .filter_map(|index| rows.get(index).copied())
                        .collect(),
                    Err(error) => {
                        // The clause was checked when the shape was created.
                        tracing::warn!(%error, "Postgres refused a shape's where");
                        Vec::new()
                    }
                }
            }
        }
    }
}

/// A subset snapshot's rows: the shape's rows (`shape`) of `rows`, filtered by the subset's
/// where over the `queryable` columns, ordered, and cut by its limit and offset. The error
/// names the field.
pub(crate) fn subset_rows(
    postgres: &PgHandle,
    table: &TableName,
    shape: &ShapeFilter,
    rows: &[Row],
    queryable: &[ColumnDef],
    subset: &SubsetParams,
) -> Result<Vec<Row>, (&'static str, String)> {
    // The crate's parser gates the text in both modes: one expression, a list of columns.
    let expr = match &subset.where_clause {
        Some(text) => Some(
            SqlExpr::parse(text, SqlLimits::default())
                .map_err(|error| ("subset__where", error.to_string()))?,
        ),
        None => None,
    };
    let order = match &subset.order_by {
        Some(text) => {
            Some(OrderBy::parse(text, queryable).map_err(|message| ("subset__order_by", message))?)
        }
        None => None,
    };
    let params = subset.params.clone().unwrap_or_default();
    #[cfg(feature = "postgres")]
    if let Some(worker) = postgres {
        let candidates = shape.keep(rows);
        let select = Select {
            table: table.clone(),
            exposed: queryable.iter().map(|c| c.name.clone()).collect(),
            where_clause: subset.where_clause.clone(),
            params,
            order_by: subset.order_by.clone(),
            limit: subset.limit,
            offset: subset.offset,
        };
        let kept = worker
            .select(&select, &candidates)
            .map_err(|message| ("subset__where", message))?;
        return Ok(kept
            .into_iter()
            .filter_map(|index| candidates.get(index).map(|row| (*row).clone()))
            .collect());
    }
    #[cfg(not(feature = "postgres"))]
    let _ = (postgres, table);
    let mut filter = match shape {
        ShapeFilter::Eval(filter) => filter.clone(),
        #[cfg(feature = "postgres")]
        ShapeFilter::Postgres(_) => Filter::default(),
    };
    if let Some(expr) = &expr {
        filter = filter.and(
            Filter::compile(expr, queryable, &params)
                .map_err(|message| ("subset__where", message))?,
        );
    }
    let mut kept: Vec<Row> = rows
        .iter()
        .filter(|row| filter.matches(row))
        .cloned()
        .collect();
    if let Some(order) = &order {
        order.sort(&mut kept);
    }
    let skip = usize::try_from(subset.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let take = subset.limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit).unwrap_or(usize::MAX)
    });
    Ok(kept.into_iter().skip(skip).take(take).collect())
}
