//! PLACEHOLDER: the filter language lands with its parser and evaluator.

use serde_json::Value;

use crate::error::{Error, Result};

/// A parsed metadata filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {}

impl Filter {
    /// Parses a filter from its JSON form.
    ///
    /// # Errors
    /// `Invalid` for unknown operators or operands of the wrong type.
    pub fn parse(_value: &Value) -> Result<Filter> {
        Err(Error::Unsupported {
            what: "`filter`".into(),
        })
    }

    /// Whether a chunk (with its document) matches.
    pub fn matches(&self, _chunk: &Value, _document: &Value) -> bool {
        true
    }
}
