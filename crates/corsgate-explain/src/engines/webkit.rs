//! WebKit (Safari): its verdict and console messages.

use super::{BrowserExchange, Judgement};

/// WebKit's judgement of the exchange; `None` until corsgate models WebKit's
/// checks, so that explain says so rather than guess.
pub fn judge(_exchange: &BrowserExchange<'_>) -> Option<Judgement> {
    None
}
