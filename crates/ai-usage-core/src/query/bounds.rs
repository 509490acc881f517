//! The accepted range of every query argument, declared once and read by
//! every door: the HTTP parameters, the CLI's flags and the Python methods
//! all refuse the same values with the same message.
//!
//! The day windows stop at 90 days: a monitor keeps 93 days in memory by
//! default, so a longer window would answer from partial data. Longer
//! periods are asked for as an explicit date range (at most
//! [`MAX_RANGE_DAYS`] days).

use crate::error::{Error, Result};

/// An integer query argument's name and inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBound {
    /// The argument's name as HTTP and Python spell it (`days_ago`).
    pub name: &'static str,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
}

impl QueryBound {
    /// `value` when it lies in `min..=max`, else an
    /// [`Error::InvalidArgument`] naming the argument and the range.
    pub fn check(&self, value: i64) -> Result<i64> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(self.out_of_range(value))
        }
    }

    /// [`QueryBound::check`] for the `u32` arguments of the monitor's
    /// methods (every range here fits `u32` or is refused before).
    pub fn check_u32(&self, value: i64) -> Result<u32> {
        let v = self.check(value)?;
        u32::try_from(v).map_err(|_| self.out_of_range(v))
    }

    /// The error for a value outside the range; `value` is shown as text so
    /// that doors reading wider integers (Python's) can report them too.
    pub fn out_of_range(&self, value: impl std::fmt::Display) -> Error {
        Error::InvalidArgument {
            argument: self.name,
            message: format!("{value} is out of range {}..={}", self.min, self.max),
        }
    }

    /// The range, for clap's `value_parser!(…).range(…)`.
    pub const fn range(&self) -> std::ops::RangeInclusive<i64> {
        self.min..=self.max
    }
}

/// `hours_ago`: hours before the current one.
pub const HOURS_AGO: QueryBound = QueryBound {
    name: "hours_ago",
    min: 0,
    max: 72,
};
/// `days_ago`: days before today.
pub const DAYS_AGO: QueryBound = QueryBound {
    name: "days_ago",
    min: 0,
    max: 90,
};
/// `days`: a window of whole days ending today.
pub const DAYS: QueryBound = QueryBound {
    name: "days",
    min: 1,
    max: 90,
};
/// `limit`: rows of a ranking.
pub const LIMIT: QueryBound = QueryBound {
    name: "limit",
    min: 1,
    max: 100,
};
/// `year` of a monthly summary.
pub const YEAR: QueryBound = QueryBound {
    name: "year",
    min: 2000,
    max: 2100,
};
/// `month` of a monthly summary.
pub const MONTH: QueryBound = QueryBound {
    name: "month",
    min: 1,
    max: 12,
};

/// The longest explicit date range (`from..=to`), in days.
pub const MAX_RANGE_DAYS: i64 = 3660;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_range_name_the_argument_and_the_range() {
        assert_eq!(DAYS_AGO.check(90).unwrap(), 90);
        assert_eq!(DAYS.check_u32(1).unwrap(), 1);
        let e = DAYS_AGO.check(100_000_000).unwrap_err().to_string();
        assert_eq!(e, "invalid days_ago: 100000000 is out of range 0..=90");
        assert!(LIMIT.check(0).is_err());
        assert!(DAYS.check(0).is_err());
        assert!(YEAR.check(-5).unwrap_err().to_string().contains("year"));
        assert!(MONTH.check(13).unwrap_err().to_string().contains("1..=12"));
        assert!(HOURS_AGO.check_u32(-1).is_err());
        assert_eq!(LIMIT.range(), 1..=100);
    }
}
