//! Tenant isolation under load, replicas and the load check (issue 6).
