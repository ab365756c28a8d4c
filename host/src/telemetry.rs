//! Logging: the global `tracing` subscriber (text or JSON lines on stderr) and the
//! slow-query log.
//!
//! Key choices:
//! - `tracing-subscriber`'s own `fmt` layer writes both formats; `json` puts the event's
//!   fields at the top level of each line and the request span (request id, method,
//!   route) under `span`, so a log shipper needs no parsing rules.
//! - The slow-query log is one `warn` line (target `arrwdb::slow_query`) per query
//!   slower than a threshold. It names the *shape* of a query, never its content: the
//!   route, library, mode, index kind, `k`, candidates, the filter's field names and
//!   operators with every operand replaced by `?`, the result count, the duration and
//!   the request id. Vectors, query text, filter values and API keys never reach it,
//!   because logs are kept longer and read by more people than the data.
//! - Settings come from [`TelemetryArgs`] (flags with environment fallbacks); until
//!   `arrwdb serve` flattens them, [`init`] reads the same environment variables
//!   (`ARRWDB_LOG_FORMAT`, `ARRWDB_SLOW_QUERY_MS`) itself.
//! - No OTLP exporter: the OpenTelemetry crates bring a gRPC/HTTP client stack larger
//!   than the rest of the host's dependencies; JSON lines on stderr are what a
//!   collector (Vector, Fluent Bit, the OpenTelemetry Collector's filelog receiver)
//!   ingests without one.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The default slow-query threshold, in milliseconds.
pub const DEFAULT_SLOW_QUERY_MS: u64 = 500;
/// Longest filter shape written to a log line, in bytes.
const MAX_SHAPE_BYTES: usize = 512;
/// Deepest filter nesting written to a log line.
const MAX_SHAPE_DEPTH: usize = 8;

/// Format of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (`tracing-subscriber`'s default format).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags (flattened into `arrwdb serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log format on stderr: `text` or `json` (one object per line).
    #[arg(long, env = "ARRWDB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log every query slower than this many milliseconds at `warn`, with its shape
    /// (never its vectors, text, filter values or keys); 0 logs every query.
    #[arg(long, env = "ARRWDB_SLOW_QUERY_MS", default_value_t = DEFAULT_SLOW_QUERY_MS)]
    pub slow_query_ms: u64,
}

impl TelemetryArgs {
    /// The settings from `ARRWDB_LOG_FORMAT` and `ARRWDB_SLOW_QUERY_MS` (defaults for
    /// unset variables; a bad value is reported and replaced by the default).
    pub fn from_env() -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let log_format = match std::env::var("ARRWDB_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            Ok(v) if v.eq_ignore_ascii_case("text") || v.is_empty() => LogFormat::Text,
            Ok(v) => {
                problems.push(format!(
                    "ARRWDB_LOG_FORMAT={v:?} is not `text` or `json`; using text"
                ));
                LogFormat::Text
            }
            Err(_) => LogFormat::Text,
        };
        let slow_query_ms = match std::env::var("ARRWDB_SLOW_QUERY_MS") {
            Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                problems.push(format!(
                    "ARRWDB_SLOW_QUERY_MS={v:?} is not a number of milliseconds; using {DEFAULT_SLOW_QUERY_MS}"
                ));
                DEFAULT_SLOW_QUERY_MS
            }),
            Err(_) => DEFAULT_SLOW_QUERY_MS,
        };
        (
            TelemetryArgs {
                log_format,
                slow_query_ms,
            },
            problems,
        )
    }
}

/// The slow-query threshold in milliseconds.
static SLOW_QUERY_MS: AtomicU64 = AtomicU64::new(DEFAULT_SLOW_QUERY_MS);

/// Installs the global `tracing` subscriber from the environment (see
/// [`TelemetryArgs::from_env`]): stderr, `RUST_LOG` filter (default `info`).
pub fn init() {
    let (args, problems) = TelemetryArgs::from_env();
    init_with(&args);
    for problem in problems {
        tracing::warn!("{problem}");
    }
}

/// Installs the global `tracing` subscriber with `args` (does nothing if one is
/// already installed) and sets the slow-query threshold.
pub fn init_with(args: &TelemetryArgs) {
    set_slow_query_ms(args.slow_query_ms);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Sets the slow-query threshold (0 logs every query).
pub fn set_slow_query_ms(ms: u64) {
    SLOW_QUERY_MS.store(ms, Ordering::Relaxed);
}

/// The slow-query threshold.
pub fn slow_query_threshold() -> Duration {
    Duration::from_millis(SLOW_QUERY_MS.load(Ordering::Relaxed))
}

/// What the slow-query log says about one query: its shape, never its content.
#[derive(Debug, Clone, Copy)]
pub struct QueryShape<'a> {
    /// The matched route template.
    pub route: &'a str,
    pub library: &'a str,
    /// `vector`, `keyword`, `hybrid`, or `list` for a document listing.
    pub mode: &'a str,
    /// The library's index kind, or `-` where it is not known.
    pub index: &'a str,
    /// Results asked for (`k`, or a listing's page size).
    pub k: u32,
    /// Candidates each retriever contributes (as the engine resolves the default).
    pub candidates: u32,
    /// The metadata filter, reduced to its shape by [`filter_shape`] when logged.
    pub filter: Option<&'a serde_json::Value>,
    /// Results returned.
    pub results: usize,
    pub request_id: &'a str,
}

/// Logs `query` at `warn` if it took at least the slow-query threshold.
pub fn slow_query(query: &QueryShape<'_>, took: Duration) {
    if took < slow_query_threshold() {
        return;
    }
    let filter = query.filter.map_or_else(|| "-".to_string(), filter_shape);
    tracing::warn!(
        target: "arrwdb::slow_query",
        route = query.route,
        library = query.library,
        mode = query.mode,
        index = query.index,
        k = query.k,
        candidates = query.candidates,
        filter = %filter,
        results = query.results,
        took_ms = took.as_micros() as f64 / 1e3,
        request_id = query.request_id,
        "slow query"
    );
}

/// The shape of a metadata filter: its field paths and operators, each operand
/// replaced by `?`, e.g. `{"year":{"$gte":?},"$or":[{"tags":{"$in":?}}]}`. Cut at
/// [`MAX_SHAPE_BYTES`] bytes and [`MAX_SHAPE_DEPTH`] levels (`…`).
pub fn filter_shape(filter: &serde_json::Value) -> String {
    let mut out = String::new();
    shape_filter(filter, 0, &mut out);
    if out.len() > MAX_SHAPE_BYTES {
        let mut end = MAX_SHAPE_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

fn push_key(key: &str, out: &mut String) {
    let _ = write!(out, "{}:", serde_json::Value::from(key));
}

/// A filter object: logical operators recurse, field keys get their condition's shape.
fn shape_filter(filter: &serde_json::Value, depth: usize, out: &mut String) {
    if depth >= MAX_SHAPE_DEPTH || out.len() > MAX_SHAPE_BYTES {
        out.push('…');
        return;
    }
    let serde_json::Value::Object(map) = filter else {
        out.push('?');
        return;
    };
    out.push('{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_key(key, out);
        match (key.as_str(), value) {
            ("$and" | "$or", serde_json::Value::Array(list)) => {
                out.push('[');
                for (j, item) in list.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    shape_filter(item, depth + 1, out);
                }
                out.push(']');
            }
            ("$not", value) => shape_filter(value, depth + 1, out),
            _ => shape_condition(value, depth + 1, out),
        }
    }
    out.push('}');
}

/// A field's condition: an operator object keeps its operators, anything else is a
/// value (`?`).
fn shape_condition(condition: &serde_json::Value, depth: usize, out: &mut String) {
    if depth >= MAX_SHAPE_DEPTH || out.len() > MAX_SHAPE_BYTES {
        out.push('…');
        return;
    }
    match condition {
        serde_json::Value::Object(map)
            if !map.is_empty() && map.keys().all(|k| k.starts_with('$')) =>
        {
            out.push('{');
            for (i, (op, operand)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_key(op, out);
                if op == "$not" {
                    shape_condition(operand, depth + 1, out);
                } else {
                    out.push('?');
                }
            }
            out.push('}');
        }
        _ => out.push('?'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_shape_keeps_fields_and_operators_and_drops_every_value() {
        let filter = json!({
            "year": {"$gte": 2024, "$lt": 2030},
            "author.name": "Ada Lovelace",
            "meta": {"secret": "s3cr3t"},
            "$or": [{"tags": {"$in": ["rust", "db"]}}, {"draft": {"$exists": false}}],
            "$not": {"kind": {"$not": {"$eq": "hidden"}}}
        });
        let shape = filter_shape(&filter);
        for value in ["2024", "2030", "Ada", "s3cr3t", "rust", "false", "hidden"] {
            assert!(!shape.contains(value), "{value} leaked into {shape}");
        }
        for kept in [
            "\"year\":{\"$gte\":?,\"$lt\":?}",
            "\"author.name\":?",
            "\"meta\":?",
            "\"$or\":[{\"tags\":{\"$in\":?}},{\"draft\":{\"$exists\":?}}]",
            "\"$not\":{\"kind\":{\"$not\":{\"$eq\":?}}}",
        ] {
            assert!(shape.contains(kept), "{kept} missing from {shape}");
        }
    }

    #[test]
    fn filter_shape_is_bounded() {
        let mut deep = json!({"x": 1});
        for _ in 0..100 {
            deep = json!({ "$not": deep });
        }
        assert!(filter_shape(&deep).ends_with("…}}}}}}}}"));
        let wide: serde_json::Map<String, serde_json::Value> =
            (0..1000).map(|i| (format!("field{i}"), json!(i))).collect();
        let shape = filter_shape(&serde_json::Value::Object(wide));
        assert!(shape.len() <= MAX_SHAPE_BYTES + 64, "{}", shape.len());
        assert!(shape.ends_with('…'));
        assert_eq!(filter_shape(&json!("not an object")), "?");
    }
}
