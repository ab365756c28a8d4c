//! The metadata filter language: a search's `"filter"` parsed once per query into a
//! [`Filter`], then evaluated against every live chunk to build the set the index may
//! return. Parsing does all the work that can be done once (paths split into segments,
//! operands checked and typed), so [`Filter::matches`] allocates nothing.
//!
//! # Shape
//!
//! The familiar MongoDB shape:
//!
//! ```json
//! {"year": {"$gte": 2024}, "author.name": "Ada",
//!  "$or": [{"tags": {"$in": ["rust"]}}, {"draft": {"$exists": false}}]}
//! ```
//!
//! - A filter is a JSON object. `{}` matches every chunk. Its keys are ANDed.
//! - A key is either a logical operator (`$and`, `$or`, `$not`) or a field path.
//! - A field's value is either an *operator object* (every key starts with `$`, e.g.
//!   `{"$gte": 2020, "$lt": 2024}`; its operators are ANDed) or any other value, which
//!   means `$eq` that value (so `{"a": {"b": 1}}` compares `a` with the object
//!   `{"b": 1}`). An object mixing `$` keys and plain keys is an error.
//!
//! # Paths
//!
//! Dotted keys and `[n]` array indexes: `author.name`, `tags[0]`, `a.b[2].c`,
//! `m[0][1]`. A key segment looks up an object member (on anything else the field is
//! missing; arrays are not traversed implicitly, use `[n]`); an index looks up an array
//! element. Keys cannot contain `.`, `[` or `]`. A path is resolved against the chunk's
//! metadata; only if it does not resolve there is the document's metadata tried. The
//! prefixes `chunk.` and `document.` pick one explicitly (a field literally named
//! `chunk` is then reached as `chunk.chunk`). A field is *missing* when its path does
//! not resolve; JSON `null` is a value, not a missing field.
//!
//! # Operators
//!
//! | operator | operand | matches when |
//! | --- | --- | --- |
//! | `$eq` | any value | the field equals it, or the field is an array with an element equal to it |
//! | `$ne` | any value | not `$eq` (so a missing field matches) |
//! | `$gt` `$gte` `$lt` `$lte` | number or string | the field (or any element of an array field) compares so |
//! | `$in` | array | `$eq` holds for one of its values (`[]` matches nothing) |
//! | `$nin` | array | not `$in` (so a missing field matches) |
//! | `$exists` | `true`/`false` | the path resolves (to anything, `null` included) / does not |
//! | `$contains` | any value | a string field contains the operand as a substring (operand a string), or an array field has an element equal to it |
//! | `$not` (on a field) | operator object or value | the condition does not hold |
//! | `$and` `$or` | non-empty array of filters | all / at least one holds |
//! | `$not` (top level) | filter | the filter does not match |
//!
//! Equality: numbers compare by value across integer and float (`1 == 1.0`, exactly,
//! also for integers beyond 2^53); strings, booleans and `null` exactly; arrays
//! element-wise in order; objects by the same keys with equal values. Comparisons
//! order numbers by value and strings by their UTF-8 bytes; a field of another type
//! than the operand (e.g. `"10"` against `$gt: 5`) does not match, which is not an
//! error. Only the top level of an array field is searched (`[[1]]` holds the element
//! `[1]`, not `1`).
//!
//! # Limits
//!
//! A filter may nest at most [`MAX_DEPTH`] JSON levels and hold at most [`MAX_VALUES`]
//! JSON values in total (operands included); this bounds the per-chunk cost and the
//! recursion. Every error is [`Error::Invalid`] with a message starting `filter:` that
//! names the place in the filter (e.g. ``filter: `$in` needs an array at `$or[0].tags`,
//! got a string``, ``filter: bad path `a..b`: empty segment``).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

/// Deepest nesting of JSON values a filter may have (the filter object is level 1).
pub const MAX_DEPTH: usize = 32;

/// Most JSON values (objects, arrays and scalars, operands included) a filter may hold.
pub const MAX_VALUES: usize = 1024;

/// A parsed metadata filter.
///
/// ```
/// use arrwdb_core::filter::Filter;
/// use serde_json::json;
///
/// let filter = Filter::parse(&json!({"year": {"$gte": 2024}, "tags": "rust"})).unwrap();
/// let chunk = json!({"year": 2025, "tags": ["rust", "db"]});
/// assert!(filter.matches(&chunk, &json!(null)));
/// assert!(!filter.matches(&json!({"year": 2023}), &json!({"tags": ["rust"]})));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

/// A node of the filter tree.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Field { path: Path, cond: Cond },
}

/// Which metadata a path is resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The chunk's, then the document's if the chunk's does not resolve.
    Either,
    Chunk,
    Document,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    scope: Scope,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// The operand of a comparison: the only types comparisons accept.
#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Number(Number),
    String(String),
}

/// A condition on one field's value (`None` when the field is missing).
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Eq(Value),
    Ne(Value),
    Cmp(CmpOp, Bound),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Contains(Value),
    All(Vec<Cond>),
    Not(Box<Cond>),
}

impl Filter {
    /// Parses a filter from its JSON form (see the [module docs](self) for the
    /// language).
    ///
    /// # Errors
    /// [`Error::Invalid`] (kind `invalid`) for anything that is not a filter: a
    /// non-object, an unknown operator, an operand of the wrong type, a bad path, or a
    /// filter deeper than [`MAX_DEPTH`] or larger than [`MAX_VALUES`]. The message
    /// starts with `filter:` and names the place in the filter.
    pub fn parse(value: &Value) -> Result<Filter> {
        let mut values = 0usize;
        measure(value, 1, &mut values)?;
        let Value::Object(map) = value else {
            return Err(fail(format!(
                "a filter must be a JSON object, got {}",
                type_name(value)
            )));
        };
        Ok(Filter {
            root: parse_object(map, "")?,
        })
    }

    /// Whether a chunk matches, given the chunk's metadata and its document's (either
    /// may be `null`). Allocates nothing.
    pub fn matches(&self, chunk: &Value, document: &Value) -> bool {
        self.root.matches(chunk, document)
    }
}

/// A metadata field path (`year`, `author.name`, `tags[0]`, `chunk.` / `document.`
/// prefixes), resolved the way filters resolve it: the chunk's metadata first, then its
/// document's. Rerankers use it to read a field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath(Path);

impl FieldPath {
    /// Parses a path.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty or malformed path.
    pub fn parse(text: &str) -> Result<FieldPath> {
        parse_path(text).map(FieldPath)
    }

    /// The field's value in a chunk's (or its document's) metadata.
    pub fn resolve<'v>(&self, chunk: &'v Value, document: &'v Value) -> Option<&'v Value> {
        self.0.resolve(chunk, document)
    }
}

impl Node {
    fn matches(&self, chunk: &Value, document: &Value) -> bool {
        match self {
            Node::And(nodes) => nodes.iter().all(|n| n.matches(chunk, document)),
            Node::Or(nodes) => nodes.iter().any(|n| n.matches(chunk, document)),
            Node::Not(node) => !node.matches(chunk, document),
            Node::Field { path, cond } => cond.holds(path.resolve(chunk, document)),
        }
    }
}

impl Path {
    fn resolve<'v>(&self, chunk: &'v Value, document: &'v Value) -> Option<&'v Value> {
        match self.scope {
            Scope::Chunk => self.walk(chunk),
            Scope::Document => self.walk(document),
            Scope::Either => self.walk(chunk).or_else(|| self.walk(document)),
        }
    }

    fn walk<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut at = root;
        for segment in &self.segments {
            at = match (segment, at) {
                (Segment::Key(key), Value::Object(map)) => map.get(key.as_str())?,
                (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(at)
    }
}

impl Cond {
    fn holds(&self, field: Option<&Value>) -> bool {
        match self {
            Cond::Eq(v) => field.is_some_and(|f| eq_or_element(f, v)),
            Cond::Ne(v) => !field.is_some_and(|f| eq_or_element(f, v)),
            Cond::Cmp(op, bound) => field.is_some_and(|f| match f {
                Value::Array(items) => items.iter().any(|x| compare(x, *op, bound)),
                _ => compare(f, *op, bound),
            }),
            Cond::In(vs) => field.is_some_and(|f| vs.iter().any(|v| eq_or_element(f, v))),
            Cond::Nin(vs) => !field.is_some_and(|f| vs.iter().any(|v| eq_or_element(f, v))),
            Cond::Exists(exists) => field.is_some() == *exists,
            Cond::Contains(v) => match field {
                Some(Value::String(s)) => v.as_str().is_some_and(|needle| s.contains(needle)),
                Some(Value::Array(items)) => items.iter().any(|x| json_eq(x, v)),
                _ => false,
            },
            Cond::All(conds) => conds.iter().all(|c| c.holds(field)),
            Cond::Not(cond) => !cond.holds(field),
        }
    }
}

/// `$eq` semantics: the field equals `v`, or is an array with an element equal to `v`.
fn eq_or_element(field: &Value, v: &Value) -> bool {
    json_eq(field, v) || matches!(field, Value::Array(items) if items.iter().any(|x| json_eq(x, v)))
}

/// Structural equality with numbers compared by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, a)| y.get(key.as_str()).is_some_and(|b| json_eq(a, b)))
        }
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

fn compare(field: &Value, op: CmpOp, bound: &Bound) -> bool {
    let order = match (field, bound) {
        (Value::Number(x), Bound::Number(y)) => number_cmp(x, y),
        (Value::String(x), Bound::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => return false,
    };
    match op {
        CmpOp::Gt => order == Ordering::Greater,
        CmpOp::Gte => order != Ordering::Less,
        CmpOp::Lt => order == Ordering::Less,
        CmpOp::Lte => order != Ordering::Greater,
    }
}

/// A JSON number as an exact integer or a (finite) float.
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Num::Int(i128::from(u))
    } else {
        // serde_json numbers are finite; 0.0 is unreachable without arbitrary precision.
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// Exact numeric order of two JSON numbers, integers and floats mixed.
fn number_cmp(a: &Number, b: &Number) -> Ordering {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Int(x), Num::Float(y)) => int_float_cmp(x, y),
        (Num::Float(x), Num::Int(y)) => int_float_cmp(y, x).reverse(),
    }
}

/// Orders an integer against a float without rounding either.
fn int_float_cmp(i: i128, f: f64) -> Ordering {
    // 2^127: every float at or beyond it is outside i128.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.is_nan() {
        return Ordering::Equal;
    }
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f < -LIMIT {
        return Ordering::Greater;
    }
    let whole = libm::trunc(f);
    // Exact: `whole` is an integer inside i128's range.
    let by_whole = i.cmp(&(whole as i128));
    if by_whole != Ordering::Equal {
        return by_whole;
    }
    let fraction = f - whole;
    if fraction > 0.0 {
        Ordering::Less
    } else if fraction < 0.0 {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

// ---------------------------------------------------------------------------------
// Parsing

fn fail(message: String) -> Error {
    Error::invalid(format!("filter: {message}"))
}

/// ` at `where`` or nothing at the top level.
fn at(place: &str) -> String {
    if place.is_empty() {
        String::new()
    } else {
        format!(" at `{place}`")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks the depth and counts the values of the whole filter before parsing it, so
/// parsing, and equality against its operands later, recurse at most `MAX_DEPTH` deep.
fn measure(v: &Value, depth: usize, values: &mut usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(fail(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    *values += 1;
    if *values > MAX_VALUES {
        return Err(fail(format!("too large: more than {MAX_VALUES} values")));
    }
    match v {
        Value::Array(items) => items.iter().try_for_each(|x| measure(x, depth + 1, values)),
        Value::Object(map) => map.values().try_for_each(|x| measure(x, depth + 1, values)),
        _ => Ok(()),
    }
}

/// One filter object; `place` is where it sits (empty at the top).
fn parse_object(map: &Map<String, Value>, place: &str) -> Result<Node> {
    let mut nodes = Vec::with_capacity(map.len());
    for (key, value) in map {
        let node = match key.as_str() {
            "$and" | "$or" => {
                let sub = join(place, key);
                let items = match value {
                    Value::Array(items) if !items.is_empty() => items,
                    _ => {
                        return Err(fail(format!(
                            "`{key}` needs a non-empty array of filters{}",
                            at(place)
                        )));
                    }
                };
                let parsed = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| parse_filter(item, &format!("{sub}[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                if key == "$and" {
                    Node::And(parsed)
                } else {
                    Node::Or(parsed)
                }
            }
            "$not" => {
                let sub = join(place, key);
                if !value.is_object() {
                    return Err(fail(format!(
                        "`$not` needs a filter object{}, got {}",
                        at(place),
                        type_name(value)
                    )));
                }
                Node::Not(Box::new(parse_filter(value, &sub)?))
            }
            op if op.starts_with('$') => {
                return Err(fail(format!(
                    "unknown operator `{op}`{} (top-level operators are `$and`, `$or`, `$not`)",
                    at(place)
                )));
            }
            field => Node::Field {
                path: parse_path(field)?,
                cond: parse_value_cond(value, &join(place, field))?,
            },
        };
        nodes.push(node);
    }
    Ok(if nodes.len() == 1 {
        nodes.pop().unwrap_or(Node::And(Vec::new()))
    } else {
        Node::And(nodes)
    })
}

fn parse_filter(value: &Value, place: &str) -> Result<Node> {
    match value {
        Value::Object(map) => parse_object(map, place),
        other => Err(fail(format!(
            "expected a filter object at `{place}`, got {}",
            type_name(other)
        ))),
    }
}

fn join(place: &str, key: &str) -> String {
    if place.is_empty() {
        String::from(key)
    } else {
        format!("{place}.{key}")
    }
}

/// A field's value: an operator object, or a literal meaning `$eq`.
fn parse_value_cond(value: &Value, field: &str) -> Result<Cond> {
    let Value::Object(map) = value else {
        return Ok(Cond::Eq(value.clone()));
    };
    let operators = map.keys().filter(|k| k.starts_with('$')).count();
    if operators == 0 {
        return Ok(Cond::Eq(value.clone()));
    }
    if operators != map.len() {
        return Err(fail(format!(
            "an object mixes operators and plain keys at `{field}` (use `$eq` to compare with an object holding `$` keys)"
        )));
    }
    let mut conds = map
        .iter()
        .map(|(op, operand)| parse_operator(op, operand, field))
        .collect::<Result<Vec<_>>>()?;
    Ok(if conds.len() == 1 {
        conds.pop().unwrap_or(Cond::All(Vec::new()))
    } else {
        Cond::All(conds)
    })
}

fn parse_operator(op: &str, operand: &Value, field: &str) -> Result<Cond> {
    let cmp = |kind: CmpOp| -> Result<Cond> {
        let bound = match operand {
            Value::Number(n) => Bound::Number(n.clone()),
            Value::String(s) => Bound::String(s.clone()),
            other => {
                return Err(fail(format!(
                    "`{op}` needs a number or a string at `{field}`, got {}",
                    type_name(other)
                )));
            }
        };
        Ok(Cond::Cmp(kind, bound))
    };
    let list = || -> Result<Vec<Value>> {
        match operand {
            Value::Array(items) => Ok(items.clone()),
            other => Err(fail(format!(
                "`{op}` needs an array at `{field}`, got {}",
                type_name(other)
            ))),
        }
    };
    Ok(match op {
        "$eq" => Cond::Eq(operand.clone()),
        "$ne" => Cond::Ne(operand.clone()),
        "$gt" => cmp(CmpOp::Gt)?,
        "$gte" => cmp(CmpOp::Gte)?,
        "$lt" => cmp(CmpOp::Lt)?,
        "$lte" => cmp(CmpOp::Lte)?,
        "$in" => Cond::In(list()?),
        "$nin" => Cond::Nin(list()?),
        "$exists" => match operand {
            Value::Bool(b) => Cond::Exists(*b),
            other => {
                return Err(fail(format!(
                    "`$exists` needs true or false at `{field}`, got {}",
                    type_name(other)
                )));
            }
        },
        "$contains" => Cond::Contains(operand.clone()),
        "$not" => Cond::Not(Box::new(parse_value_cond(operand, field)?)),
        "$and" | "$or" => {
            return Err(fail(format!(
                "`{op}` is not a field operator at `{field}` (put it at the top level)"
            )));
        }
        unknown => {
            return Err(fail(format!("unknown operator `{unknown}` at `{field}`")));
        }
    })
}

/// Splits `chunk.a.b[2]` into its scope and segments.
fn parse_path(text: &str) -> Result<Path> {
    let bad = |why: String| fail(format!("bad path `{text}`: {why}"));
    let (scope, rest) = if let Some(rest) = text.strip_prefix("chunk.") {
        (Scope::Chunk, rest)
    } else if let Some(rest) = text.strip_prefix("document.") {
        (Scope::Document, rest)
    } else {
        (Scope::Either, text)
    };
    let mut segments = Vec::new();
    // Each dotted part is `key`, `key[i]...` or (first part only) `[i]...`.
    for (n, part) in rest.split('.').enumerate() {
        if part.is_empty() {
            return Err(bad(String::from("empty segment")));
        }
        let key_end = part.find('[').unwrap_or(part.len());
        let (key, mut indexes) = part.split_at(key_end);
        if key.contains(']') {
            return Err(bad(format!("unexpected `]` in `{part}`")));
        }
        if key.is_empty() && n > 0 {
            return Err(bad(format!("`{part}` needs a key before `[`")));
        }
        if !key.is_empty() {
            segments.push(Segment::Key(String::from(key)));
        }
        while let Some(after) = indexes.strip_prefix('[') {
            let Some(close) = after.find(']') else {
                return Err(bad(String::from("missing `]`")));
            };
            let digits = &after[..close];
            let index = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                digits.parse::<usize>().ok()
            } else {
                None
            };
            let Some(index) = index else {
                return Err(bad(format!("`{digits}` is not an array index")));
            };
            segments.push(Segment::Index(index));
            indexes = &after[close + 1..];
        }
        if !indexes.is_empty() {
            return Err(bad(format!("unexpected `{indexes}` after `]`")));
        }
    }
    Ok(Path { scope, segments })
}
