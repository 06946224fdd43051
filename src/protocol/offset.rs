//! Shape log offsets: `-1`, `now`, or `<tx>_<op>` where `op` may be `inf`.

use std::fmt;
use std::str::FromStr;

/// Where in a shape log a request starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Offset {
    /// `-1`: from the very start (the initial snapshot).
    #[default]
    BeforeAll,
    /// `now`: skip the log, start at the current end.
    Now,
    /// `<tx>_<op>`: a position in the log.
    At(LogOffset),
}

/// A position in a shape log: transaction offset and operation offset.
///
/// Ordered as the log is: by transaction, then by operation, with `inf` after every
/// operation of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogOffset {
    /// The transaction part.
    pub tx: u64,
    /// The operation part; `None` is `inf`, after every operation of the transaction.
    pub op: Option<u64>,
}

impl LogOffset {
    /// `<tx>_<op>`.
    pub fn new(tx: u64, op: u64) -> Self {
        Self { tx, op: Some(op) }
    }

    /// `<tx>_inf`.
    pub fn end_of(tx: u64) -> Self {
        Self { tx, op: None }
    }
}

impl Ord for LogOffset {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // `None` is `inf`: after every numbered operation, unlike `Option`'s own order.
        let op = |offset: &Self| offset.op.map_or((1, 0), |op| (0, op));
        (self.tx, op(self)).cmp(&(other.tx, op(other)))
    }
}

impl PartialOrd for LogOffset {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Offset {
    /// Whether this offset needs no `handle` (and allows no `live`): `-1` or `now`.
    pub fn is_start(self) -> bool {
        matches!(self, Self::BeforeAll | Self::Now)
    }
}

/// An offset that is not `-1`, `now` or `<tx>_<op>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("has invalid format")]
pub struct InvalidOffset;

impl FromStr for Offset {
    type Err = InvalidOffset;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "-1" => Ok(Self::BeforeAll),
            "now" => Ok(Self::Now),
            _ => {
                let (tx, op) = text.split_once('_').ok_or(InvalidOffset)?;
                let tx = parse_digits(tx)?;
                let op = if op == "inf" {
                    None
                } else {
                    Some(parse_digits(op)?)
                };
                Ok(Self::At(LogOffset { tx, op }))
            }
        }
    }
}

/// Plain decimal digits only: no sign, no spaces (`u64::from_str` would take a `+`).
fn parse_digits(text: &str) -> Result<u64, InvalidOffset> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(InvalidOffset);
    }
    text.parse().map_err(|_| InvalidOffset)
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BeforeAll => f.write_str("-1"),
            Self::Now => f.write_str("now"),
            Self::At(offset) => offset.fmt(f),
        }
    }
}

impl fmt::Display for LogOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Some(op) => write!(f, "{}_{}", self.tx, op),
            None => write!(f, "{}_inf", self.tx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_and_render() {
        for text in [
            "-1",
            "now",
            "0_0",
            "0_inf",
            "26800584_4",
            "18446744073709551615_inf",
        ] {
            let offset: Offset = text.parse().unwrap();
            assert_eq!(offset.to_string(), text);
        }
        assert_eq!("0_inf".parse(), Ok(Offset::At(LogOffset::end_of(0))));
    }

    #[test]
    fn log_offsets_order_like_the_log_with_inf_last_in_its_transaction() {
        let mut offsets = vec![
            LogOffset::end_of(1),
            LogOffset::new(2, 0),
            LogOffset::new(1, 7),
            LogOffset::end_of(0),
            LogOffset::new(1, 0),
        ];
        offsets.sort();
        assert_eq!(
            offsets,
            [
                LogOffset::end_of(0),
                LogOffset::new(1, 0),
                LogOffset::new(1, 7),
                LogOffset::end_of(1),
                LogOffset::new(2, 0),
            ]
        );
    }

    #[test]
    fn malformed_offsets_are_refused() {
        for text in [
            "", "bababa", "-2", "1", "1_", "_1", "+1_1", "1_-1", "1_2_3", "1_Inf", " 1_1", "NOW",
        ] {
            assert_eq!(text.parse::<Offset>(), Err(InvalidOffset), "{text:?}");
        }
    }
}
