//! `/openapi.json`, logs and the slow-query log (issue 7).
