//! Generates `$OUT_DIR/fold_table.rs`, the ASCII-folding table of the `small-fold`
//! feature (`text::analyze`): for every non-ASCII, non-Hangul character whose folding
//! (canonical decomposition without combining marks) is not the character itself, that
//! folding. It is computed from the very `unicode-normalization` the default build
//! calls at run time, so both builds fold every character alike (a unit test checks all
//! of them); the table is 17 KB instead of the crate's 50 KB of decomposition tables.

// Build scripts talk to cargo through stdout.
#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::path::PathBuf;

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// Hangul syllables decompose arithmetically; `analyze::fold` computes them.
const HANGUL: std::ops::RangeInclusive<u32> = 0xAC00..=0xD7A3;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let mut keys = Vec::new();
    let mut offsets = vec![0u32];
    let mut folded = String::new();
    for code in 0x80..=u32::from(char::MAX) {
        let Some(c) = char::from_u32(code) else {
            continue;
        };
        if HANGUL.contains(&code) {
            continue;
        }
        let mut fold = String::new();
        decompose_canonical(c, |d| {
            if !is_combining_mark(d) {
                fold.push(d);
            }
        });
        if fold.is_empty() || fold == c.to_string() {
            continue;
        }
        keys.push(code);
        folded.push_str(&fold);
        offsets.push(folded.len() as u32);
    }
    let mut out = String::new();
    let _ = writeln!(out, "/// Characters with a folding, ascending.");
    let _ = writeln!(out, "static FOLD_KEYS: [u32; {}] = {keys:?};", keys.len());
    let _ = writeln!(
        out,
        "/// `FOLDED[FOLD_OFFSETS[i]..FOLD_OFFSETS[i + 1]]` folds `FOLD_KEYS[i]`."
    );
    let _ = writeln!(
        out,
        "static FOLD_OFFSETS: [u16; {}] = {offsets:?};",
        offsets.len()
    );
    let _ = writeln!(out, "/// The foldings, concatenated.");
    let _ = writeln!(out, "static FOLDED: &str = {folded:?};");
    assert!(
        folded.len() <= usize::from(u16::MAX),
        "fold table offsets overflow u16"
    );
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dir.join("fold_table.rs"), out).expect("writing fold_table.rs");
}
