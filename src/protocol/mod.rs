//! Electric's shape API as types, with no tower in sight.
//!
//! [`ShapeRequest`] is a `/v1/shape` request's query string parsed the way Electric parses it
//! (see [`query`]), validated with Electric's rules, and rendered back canonically. Every layer
//! of this crate speaks these types, so that what a layer checks is exactly what it forwards.
//!
//! ```
//! use tower_electric::protocol::{Offset, ShapeRequest, TableName};
//!
//! let request = ShapeRequest::parse("table=Items&offset=-1&where=id+%3E+%241&params%5B1%5D=5")?;
//! assert_eq!(request.table, Some(TableName::parse("public.items")?));
//! assert_eq!(request.offset, Offset::BeforeAll);
//! assert_eq!(request.params, ["5"]);
//! assert_eq!(
//!     request.to_query_string(),
//!     "offset=-1&params[1]=5&table=public.items&where=id%20%3E%20%241"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod headers;
mod ident;
mod offset;
pub mod query;
mod request;
pub(crate) mod sql;

pub use ident::{
    parse_column_list, render_column_list, Identifier, IdentifierError, TableName,
    MAX_IDENTIFIER_BYTES,
};
pub use offset::{InvalidOffset, LogOffset, Offset};
pub use query::QueryPairs;
pub(crate) use request::subset_params;
pub use request::{LogMode, Replica, ShapeRequest, SubsetParams};
pub(crate) use sql::{column_name, POLICY_MAX_DEPTH};
pub use sql::{SqlError, SqlExpr, SqlLimits, SqlOrderBy};

use crate::rejection::Rejection;

/// Why a shape request's query string was refused. Each becomes a 400 naming the field
/// (414 for an over-long query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A key was given more than once (after decoding).
    #[error("{key}: given more than once")]
    DuplicateKey {
        /// The decoded key.
        key: String,
    },
    /// A `%` not followed by two hex digits.
    #[error("query: malformed percent-encoding")]
    MalformedEscape,
    /// Decoded bytes that are not UTF-8.
    #[error("query: not valid UTF-8")]
    NotUtf8,
    /// The raw query string is longer than allowed.
    #[error("query: longer than {max_len} bytes")]
    QueryTooLong {
        /// The limit.
        max_len: usize,
    },
    /// A protocol key in bracket form (`secret[]`, `table[x]`), which Electric would decode
    /// into a list or map.
    #[error("{key}: nested keys are not allowed")]
    NestedKey {
        /// The decoded key.
        key: String,
    },
    /// A required field is missing.
    #[error("{field}: can't be blank")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A field's value is malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong, in Electric's words where Electric has them.
        message: String,
    },
}

impl ProtocolError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// The field (query key) the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::DuplicateKey { key } | Self::NestedKey { key } => key,
            Self::MalformedEscape | Self::NotUtf8 | Self::QueryTooLong { .. } => "query",
            Self::Missing { field } | Self::Invalid { field, .. } => field,
        }
    }

    /// The error message without the field name.
    pub fn detail(&self) -> String {
        match self {
            Self::DuplicateKey { .. } => "given more than once".into(),
            Self::MalformedEscape => "malformed percent-encoding".into(),
            Self::NotUtf8 => "not valid UTF-8".into(),
            Self::QueryTooLong { max_len } => format!("longer than {max_len} bytes"),
            Self::NestedKey { .. } => "nested keys are not allowed".into(),
            Self::Missing { .. } => "can't be blank".into(),
            Self::Invalid { message, .. } => message.clone(),
        }
    }
}

impl From<ProtocolError> for Rejection {
    fn from(error: ProtocolError) -> Self {
        let rejection = match error {
            ProtocolError::QueryTooLong { .. } => Rejection::uri_too_long(),
            _ => Rejection::invalid_request(),
        };
        rejection.with_field_error(error.field().to_owned(), error.detail())
    }
}
