//! Import input: NDJSON (one document per line) or one JSON array of documents, each
//! in the shape of `POST /v1/libraries/{lib}/documents`. The whole input is parsed
//! before the first write, so a syntax error anywhere fails the job with nothing
//! imported.

use arrwdb_core::api::{self, UpsertDocumentRequest};

use crate::error::ApiError;

/// Parses `bytes` (NDJSON, or a JSON array when the first non-blank byte is `[`).
///
/// # Errors
/// 400 `invalid` naming the first bad line, or for an input without documents.
pub fn parse_documents(bytes: &[u8]) -> Result<Vec<UpsertDocumentRequest>, ApiError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let documents = if first == Some(&b'[') {
        api::from_json::<Vec<UpsertDocumentRequest>>(bytes)
            .map_err(|e| ApiError::invalid(format!("JSON array of documents: {e}")))?
    } else {
        let mut documents = Vec::new();
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let document = api::from_json::<UpsertDocumentRequest>(line)
                .map_err(|e| ApiError::invalid(format!("NDJSON line {}: {e}", n + 1)))?;
            documents.push(document);
        }
        documents
    };
    if documents.is_empty() {
        return Err(ApiError::invalid("the input holds no documents"));
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ndjson_and_arrays_parse_and_errors_name_the_line() {
        let ndjson = b"{\"id\":\"a\",\"chunks\":[{\"embedding\":[1.0]}]}\r\n\n{\"chunks\":[{\"embedding\":[2.0]}]}\n";
        let docs = parse_documents(ndjson).expect("ndjson");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id.as_deref(), Some("a"));
        let array = b" [{\"id\":\"b\",\"chunks\":[{\"embedding\":[1.0]}]}]";
        assert_eq!(parse_documents(array).expect("array").len(), 1);
        let bad = b"{\"id\":\"a\",\"chunks\":[{\"embedding\":[1.0]}]}\n{nope\n";
        let e = parse_documents(bad).expect_err("bad line");
        assert!(e.message().contains("line 2"), "{}", e.message());
        assert!(parse_documents(b"\n \n").is_err());
    }

    proptest! {
        /// Outside bytes never panic the parser: any input is documents or a 400.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(e) = parse_documents(&bytes) {
                prop_assert_eq!(e.status.as_u16(), 400);
            }
        }

        /// Documents written as NDJSON come back unchanged.
        #[test]
        fn ndjson_round_trips(ids in proptest::collection::vec("[a-z0-9]{1,8}", 1..20),
                              values in proptest::collection::vec(-1.0e3f32..1.0e3, 1..4)) {
            let text: String = ids
                .iter()
                .map(|id| serde_json::json!({"id": id, "chunks": [{"text": id, "embedding": values}]}).to_string() + "\n")
                .collect();
            let docs = parse_documents(text.as_bytes()).expect("parse");
            prop_assert_eq!(docs.len(), ids.len());
            for (doc, id) in docs.iter().zip(&ids) {
                prop_assert_eq!(doc.id.as_deref(), Some(id.as_str()));
                prop_assert_eq!(&doc.chunks[0].embedding, &values);
            }
        }
    }
}
