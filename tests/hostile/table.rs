//! The table: every hostile stream and the behaviour expected of mailfeed,
//! one group of rows a file.

mod fetch;
mod lines;
mod literals;
mod login;

use crate::script::Case;

/// Every row, sorted by name.
pub(crate) fn cases() -> Vec<Case> {
    let mut v = login::rows();
    v.extend(literals::rows());
    v.extend(lines::rows());
    v.extend(fetch::rows());
    v.sort_by_key(|c| c.name);
    v
}
