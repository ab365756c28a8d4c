//! The WAL segment format at its edges, byte by byte: framing (length, magic, version,
//! checksum), every check of the v2 record walk (count, per-record header, length and
//! checksum, one library, consecutive sequence numbers, trailing bytes), and
//! `Command::library` for every command. Segments are built by hand here, with correct
//! checksums, so each check is reached on its own; these tests kill the mutants of
//! `codec.rs` and `command.rs` that the round-trip tests miss (docs/quality.md).

use arrwdb_core::api::{CreateLibraryRequest, DeleteDocumentsRequest};
use arrwdb_core::codec::{
    self, WAL_MAGIC, WAL_VERSION, decode_wal_segment, decode_wal_segment_prefix, encode_wal_segment,
};
use arrwdb_core::{Command, DocumentData, Engine, Error, IndexConfig, Metadata, WalOp, WalRecord};

fn record(library: &str, seq: u64) -> WalRecord {
    WalRecord {
        library: library.into(),
        seq,
        op: WalOp::DeleteDocument {
            id: format!("doc-{seq}"),
        },
    }
}

/// A v2 segment from raw record payloads: `count | (len | crc | bytes)* | crc`.
fn segment(version: u16, count: u32, records: &[Vec<u8>], trailing: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&WAL_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for bytes in records {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(trailing);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn encoded(records: &[WalRecord]) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(|r| codec::to_bytes(r).expect("encode record"))
        .collect()
}

/// The message of the error that stopped `decode_wal_segment_prefix`.
fn stopped(bytes: &[u8]) -> (usize, String) {
    let (records, error) = decode_wal_segment_prefix(bytes);
    let error = error.expect("the segment should be refused");
    assert_eq!(
        decode_wal_segment(bytes).map_err(|e| e.to_string()),
        Err(error.to_string()),
        "the strict decoder refuses with the same error"
    );
    (records.len(), error.to_string())
}

#[test]
fn a_hand_built_segment_decodes_like_an_encoded_one() {
    let records: Vec<WalRecord> = (7..10).map(|seq| record("lib", seq)).collect();
    let bytes = segment(WAL_VERSION, 3, &encoded(&records), &[]);
    assert_eq!(bytes, encode_wal_segment(&records).expect("encode"));
    assert_eq!(decode_wal_segment(&bytes).expect("decode"), records);
    assert_eq!(decode_wal_segment_prefix(&bytes), (records, None));
}

#[test]
fn framing_is_checked_before_the_records() {
    // Ten bytes is the smallest frame (header and checksum); one less is too short.
    let empty = segment(WAL_VERSION, 0, &[], &[]);
    let short = &empty[..9];
    let (_, message) = stopped(short);
    assert!(message.contains("too short"), "{message}");
    let mut smallest = Vec::from(WAL_MAGIC);
    smallest.extend_from_slice(&WAL_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&smallest);
    smallest.extend_from_slice(&crc.to_le_bytes());
    // It passes the length check and fails on the record count it reads from the
    // checksum's bytes.
    let (_, message) = stopped(&smallest);
    assert!(message.contains("record 0 of"), "{message}");
    assert!(message.contains("truncated header"), "{message}");

    let mut magic = empty.clone();
    magic[0] = b'X';
    let (_, message) = stopped(&magic);
    assert!(message.contains("wrong magic"), "{message}");

    for version in [0u16, WAL_VERSION + 1, u16::MAX] {
        let bytes = segment(version, 1, &encoded(&[record("lib", 1)]), &[]);
        let (kept, _) = stopped(&bytes);
        assert_eq!(kept, 0);
        assert!(
            matches!(
                decode_wal_segment(&bytes),
                Err(Error::UnknownVersion { version: v, supported: WAL_VERSION, .. }) if v == version
            ),
            "version {version}"
        );
    }
}

#[test]
fn snapshot_frames_get_the_same_checks() {
    // The smallest snapshot frame (no payload) passes framing and fails decoding; one
    // byte less is too short.
    let mut frame = Vec::from(codec::SNAPSHOT_MAGIC);
    frame.extend_from_slice(&codec::SNAPSHOT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    let message = |bytes: &[u8]| {
        Engine::new()
            .restore(bytes)
            .expect_err("not a snapshot")
            .to_string()
    };
    let at_ten = message(&frame);
    assert!(at_ten.starts_with("corrupt snapshot"), "{at_ten}");
    assert!(!at_ten.contains("too short"), "{at_ten}");
    for len in 0..frame.len() {
        let short = message(&frame[..len]);
        assert!(short.contains("too short"), "{len}: {short}");
    }
}

#[test]
fn counts_headers_and_lengths_are_checked() {
    let records: Vec<WalRecord> = (1..=2).map(|seq| record("lib", seq)).collect();
    let raw = encoded(&records);

    // A count of 0 with no records, and a count larger than the records present.
    let (kept, message) = stopped(&segment(WAL_VERSION, 0, &[], &[]));
    assert_eq!(kept, 0);
    assert!(message.contains("empty WAL segment"), "{message}");
    let (kept, message) = stopped(&segment(WAL_VERSION, 3, &raw, &[]));
    assert_eq!(kept, 2);
    assert!(message.contains("record 2 of 3"), "{message}");

    // Fewer in the count than present: the rest are unexpected bytes.
    let (kept, message) = stopped(&segment(WAL_VERSION, 1, &raw, &[]));
    assert_eq!(kept, 1);
    let extra = 8 + raw[1].len();
    assert!(
        message.contains(&format!("{extra} unexpected bytes after the records")),
        "{message}"
    );
    // Bytes after the last record, even one.
    let (kept, message) = stopped(&segment(WAL_VERSION, 2, &raw, &[0]));
    assert_eq!(kept, 2);
    assert!(
        message.contains("1 unexpected bytes after the records"),
        "{message}"
    );

    // A record length past the end.
    let mut long = segment(WAL_VERSION, 2, &raw, &[]);
    let second = 6 + 4 + 8 + raw[0].len();
    long[second..second + 4].copy_from_slice(&1000u32.to_le_bytes());
    let body = long.len() - 4;
    let crc = crc32fast::hash(&long[..body]);
    long[body..].copy_from_slice(&crc.to_le_bytes());
    let (kept, message) = stopped(&long);
    assert_eq!(kept, 1);
    assert!(message.contains("record 1 of 2: truncated"), "{message}");

    // A record whose bytes are not a record (valid checksum, bad postcard).
    let (kept, message) = stopped(&segment(
        WAL_VERSION,
        2,
        &[raw[0].clone(), vec![0xff; 3]],
        &[],
    ));
    assert_eq!(kept, 1);
    assert!(message.contains("record 1 of 2"), "{message}");
}

#[test]
fn the_segment_checksum_guards_intact_records() {
    let records: Vec<WalRecord> = (1..=3).map(|seq| record("lib", seq)).collect();
    let mut bytes = encode_wal_segment(&records).expect("encode");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    // Every record is intact (each has its own checksum), the segment's is not.
    let (kept, message) = stopped(&bytes);
    assert_eq!(kept, 3);
    assert!(message.contains("checksum mismatch"), "{message}");
    assert!(!message.contains("record"), "{message}");
}

#[test]
fn records_must_be_consecutive_and_of_one_library() {
    let cases: [(&str, Vec<WalRecord>); 4] = [
        ("gap", vec![record("lib", 1), record("lib", 3)]),
        ("repeat", vec![record("lib", 4), record("lib", 4)]),
        ("backwards", vec![record("lib", 5), record("lib", 4)]),
        ("library", vec![record("lib", 1), record("other", 2)]),
    ];
    for (what, records) in cases {
        assert!(
            matches!(encode_wal_segment(&records), Err(Error::Internal(_))),
            "{what}: the encoder refuses"
        );
        let bytes = segment(WAL_VERSION, 2, &encoded(&records), &[]);
        let (records_kept, error) = decode_wal_segment_prefix(&bytes);
        assert_eq!(records_kept, records[..1], "{what}");
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("record 1 of 2: records must be consecutive and of one library"),
            "{what}: {message}"
        );
    }
    // Three in a row: the third is compared with the first plus two.
    let mut three: Vec<WalRecord> = (1..=3).map(|seq| record("lib", seq)).collect();
    assert!(encode_wal_segment(&three).is_ok());
    three[2].seq = 2;
    assert!(encode_wal_segment(&three).is_err());
    let (kept, _) = stopped(&segment(WAL_VERSION, 3, &encoded(&three), &[]));
    assert_eq!(kept, 2);
    // The last sequence number of all still encodes when it is the first.
    assert!(encode_wal_segment(&[record("lib", u64::MAX)]).is_ok());
    assert!(encode_wal_segment(&[record("lib", u64::MAX), record("lib", 0)]).is_err());
}

#[test]
fn every_command_names_its_library() {
    let config = serde_json::from_value::<CreateLibraryRequest>(
        serde_json::json!({"name": "created", "dimension": 2}),
    )
    .expect("request")
    .into_config()
    .expect("config");
    let commands = [
        (Command::CreateLibrary(config), "created"),
        (
            Command::DeleteLibrary {
                library: "a".into(),
            },
            "a",
        ),
        (
            Command::UpsertDocument {
                library: "u".into(),
                document: DocumentData {
                    id: "d".into(),
                    metadata: Metadata(serde_json::Value::Null),
                    chunks: Vec::new(),
                },
            },
            "u",
        ),
        (
            Command::DeleteDocument {
                library: "b".into(),
                document: "d".into(),
            },
            "b",
        ),
        (
            Command::RebuildIndex {
                library: "c".into(),
                index: IndexConfig::Flat,
            },
            "c",
        ),
        (
            Command::Optimize {
                library: "e".into(),
            },
            "e",
        ),
        (
            Command::DeleteDocuments {
                library: "f".into(),
                request: DeleteDocumentsRequest::default(),
            },
            "f",
        ),
    ];
    for (command, library) in commands {
        assert_eq!(command.library(), library, "{command:?}");
    }
}
