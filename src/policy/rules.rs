//! The declarative policy: allowed tables, their columns and row filters.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use crate::protocol::{Identifier, LogMode, Replica, ShapeRequest, TableName};
use crate::rejection::Rejection;

use super::decision::{DecisionFuture, Policy, RowFilter, ShapeDefinition};

/// Why a declarative policy could not be built: the policy's own text is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A table name that does not parse.
    #[error("table {table:?}: {reason}")]
    Table {
        /// The text given.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// The same table given twice.
    #[error("table {table}: given more than once")]
    DuplicateTable {
        /// The table.
        table: String,
    },
    /// A column name that does not parse.
    #[error("table {table}: column {column:?}: {reason}")]
    Column {
        /// The table.
        table: String,
        /// The text given.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// A row filter that does not parse or numbers its placeholders wrongly.
    #[error("row filter: {reason}")]
    RowFilter {
        /// What is wrong.
        reason: String,
    },
}

type ParamsFn = dyn Fn(&Parts) -> Option<Vec<String>> + Send + Sync;

/// The rules of one table in a [`ShapePolicy`].
#[must_use]
pub struct TablePolicy {
    table: String,
    columns: Option<Vec<String>>,
    row_filter: Option<(String, Option<Arc<ParamsFn>>)>,
    replica: Option<Replica>,
    replica_modes: Option<Vec<Replica>>,
    log_modes: Option<Vec<LogMode>>,
    client_where: bool,
    subsets: bool,
}

impl fmt::Debug for TablePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TablePolicy")
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field(
                "row_filter",
                &self.row_filter.as_ref().map(|(text, _)| text),
            )
            .field("client_where", &self.client_where)
            .field("subsets", &self.subsets)
            .finish_non_exhaustive()
    }
}

impl TablePolicy {
    /// Allows `table` (`items`, `public.items`, `"Mixed"`): every column and row until
    /// narrowed, no client where, no subsets.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            columns: None,
            row_filter: None,
            replica: None,
            replica_modes: None,
            log_modes: None,
            client_where: false,
            subsets: false,
        }
    }

    /// The visible columns, as identifiers (`id`, `"Title"`); see
    /// [`ShapeDefinition::columns`].
    pub fn columns<C: Into<String>>(mut self, columns: impl IntoIterator<Item = C>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// The rows a principal may see: `filter` (server text with `$1..$n`, parsed by
    /// [`ShapePolicyBuilder::build`]) with its values from `params`, a function of the request
    /// parts (the principal in the extensions). `params` returning `None` means there is no
    /// principal: the request is refused with 401. Responses then depend on the principal.
    pub fn row_filter<F>(mut self, filter: impl Into<String>, params: F) -> Self
    where
        F: Fn(&Parts) -> Option<Vec<String>> + Send + Sync + 'static,
    {
        self.row_filter = Some((filter.into(), Some(Arc::new(params))));
        self
    }

    /// A row filter without values, the same for everyone (`deleted_at IS NULL`); responses
    /// stay fit for shared caches.
    pub fn fixed_row_filter(mut self, filter: impl Into<String>) -> Self {
        self.row_filter = Some((filter.into(), None));
        self
    }

    /// Whether the client may add its own where; see [`ShapeDefinition::allow_client_where`].
    pub fn client_where(mut self, allow: bool) -> Self {
        self.client_where = allow;
        self
    }

    /// Whether the client may ask for subsets; see [`ShapeDefinition::allow_subsets`].
    pub fn subsets(mut self, allow: bool) -> Self {
        self.subsets = allow;
        self
    }

    /// Forces `replica`; see [`ShapeDefinition::replica`].
    pub fn replica(mut self, replica: Replica) -> Self {
        self.replica = Some(replica);
        self
    }

    /// The replica modes a client may ask for; see [`ShapeDefinition::replica_modes`].
    pub fn replica_modes(mut self, modes: &[Replica]) -> Self {
        self.replica_modes = Some(modes.to_vec());
        self
    }

    /// The log modes a client may ask for; see [`ShapeDefinition::log_modes`].
    pub fn log_modes(mut self, modes: &[LogMode]) -> Self {
        self.log_modes = Some(modes.to_vec());
        self
    }

    fn build(self) -> Result<(TableName, CompiledTable), PolicyError> {
        let table = TableName::parse(&self.table).map_err(|error| PolicyError::Table {
            table: self.table.clone(),
            reason: error.to_string(),
        })?;
        let mut template = ShapeDefinition::new(table.clone())
            .allow_client_where(self.client_where)
            .allow_subsets(self.subsets)
            .depends_on_principal(false);
        if let Some(columns) = self.columns {
            let columns = columns
                .iter()
                .map(|column| {
                    Identifier::parse(column).map_err(|error| PolicyError::Column {
                        table: table.to_string(),
                        column: column.clone(),
                        reason: error.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            template = template.columns(columns);
        }
        if let Some(replica) = self.replica {
            template = template.replica(replica);
        }
        if let Some(modes) = self.replica_modes {
            template = template.replica_modes(&modes);
        }
        if let Some(modes) = self.log_modes {
            template = template.log_modes(&modes);
        }
        let mut params = None;
        if let Some((text, params_fn)) = self.row_filter {
            let filter = RowFilter::parse(&text)?;
            match params_fn {
                Some(params_fn) => {
                    template = template.depends_on_principal(true);
                    params = Some((filter, params_fn));
                }
                None if filter.param_count() == 0 => {
                    template = template.row_filter(&filter, Vec::<String>::new());
                }
                None => {
                    return Err(PolicyError::RowFilter {
                        reason: "a fixed row filter takes no $n values".into(),
                    })
                }
            }
        }
        Ok((table, CompiledTable { template, params }))
    }
}

struct CompiledTable {
    template: ShapeDefinition,
    params: Option<(RowFilter, Arc<ParamsFn>)>,
}

/// A declarative [`Policy`]: the allowed tables, each with its visible columns, row filter and
/// what the client may add. Any other table is refused with 403; a row filter whose values
/// cannot be read (no principal) with 401.
///
/// ```
/// use http::request::Parts;
/// use tower_electric::policy::{ShapePolicy, TablePolicy};
///
/// #[derive(Clone)]
/// struct Principal { tenant: String }
///
/// fn tenant(parts: &Parts) -> Option<Vec<String>> {
///     parts.extensions.get::<Principal>().map(|p| vec![p.tenant.clone()])
/// }
///
/// let policy = ShapePolicy::builder()
///     .table(TablePolicy::new("items").columns(["id", "tenant_id", "title", "done"])
///         .row_filter("tenant_id = $1", tenant).client_where(true).subsets(true))
///     .table(TablePolicy::new("tenants").columns(["id", "name", "keys"]).row_filter("id = $1", tenant))
///     .build()?;
/// # let _ = policy;
/// # Ok::<(), tower_electric::policy::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct ShapePolicy {
    tables: Arc<BTreeMap<TableName, CompiledTable>>,
}

impl fmt::Debug for ShapePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShapePolicy")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ShapePolicy {
    /// Starts a policy that allows no table.
    pub fn builder() -> ShapePolicyBuilder {
        ShapePolicyBuilder { tables: Vec::new() }
    }

    /// The decision, synchronously: what [`Policy::decide`] answers.
    pub fn decide_now(
        &self,
        parts: &Parts,
        request: &ShapeRequest,
    ) -> Result<ShapeDefinition, Rejection> {
        let Some(table) = request.table.as_ref() else {
            return Err(Rejection::invalid_request().with_field_error("table", "can't be blank"));
        };
        let Some(compiled) = self.tables.get(table) else {
            return Err(Rejection::forbidden()
                .with_message("table is not allowed")
                .with_field_error("table", "is not allowed"));
        };
        match &compiled.params {
            None => Ok(compiled.template.clone()),
            Some((filter, params_fn)) => match params_fn(parts) {
                Some(params) => Ok(compiled.template.clone().row_filter(filter, params)),
                None => Err(Rejection::unauthorized()),
            },
        }
    }
}

impl Policy for ShapePolicy {
    fn decide<'a>(&'a self, parts: &'a Parts, request: &'a ShapeRequest) -> DecisionFuture<'a> {
        Box::pin(std::future::ready(self.decide_now(parts, request)))
    }
}

/// Builds a [`ShapePolicy`]; the policy's text is checked by [`build`](Self::build).
#[derive(Debug)]
#[must_use]
pub struct ShapePolicyBuilder {
    tables: Vec<TablePolicy>,
}

impl ShapePolicyBuilder {
    /// Allows one more table.
    pub fn table(mut self, table: TablePolicy) -> Self {
        self.tables.push(table);
        self
    }

    /// Parses every table name, column and row filter, refusing bad policy text.
    pub fn build(self) -> Result<ShapePolicy, PolicyError> {
        let mut tables = BTreeMap::new();
        for table in self.tables {
            let (name, compiled) = table.build()?;
            if tables.contains_key(&name) {
                return Err(PolicyError::DuplicateTable {
                    table: name.to_string(),
                });
            }
            tables.insert(name, compiled);
        }
        Ok(ShapePolicy {
            tables: Arc::new(tables),
        })
    }
}
