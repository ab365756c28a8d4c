//! Background jobs (issue 7).
