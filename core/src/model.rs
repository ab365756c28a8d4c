//! The data model: libraries, documents and chunks.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How vectors are compared. Scores are always "higher is closer".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity; score in [-1, 1], distance `1 - score`.
    #[default]
    Cosine,
    /// Inner product; score is the dot product, there is no distance.
    Dot,
    /// Euclidean distance; score is `-distance`.
    L2,
}

/// Index kind and parameters of a library. Only `flat` exists so far.
///
/// In JSON it is internally tagged (`{"type":"flat", ...params}`); in the binary
/// formats it is a plain enum, because postcard cannot decode internally tagged enums.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IndexConfig {
    /// Exact search over every live vector.
    #[default]
    Flat,
}

mod index_repr {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
    pub(super) enum Tagged {
        Flat,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) enum Plain {
        Flat,
    }
}

impl Serialize for IndexConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self, serializer.is_human_readable()) {
            (IndexConfig::Flat, true) => index_repr::Tagged::Flat.serialize(serializer),
            (IndexConfig::Flat, false) => index_repr::Plain::Flat.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for IndexConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            Ok(match index_repr::Tagged::deserialize(deserializer)? {
                index_repr::Tagged::Flat => IndexConfig::Flat,
            })
        } else {
            Ok(match index_repr::Plain::deserialize(deserializer)? {
                index_repr::Plain::Flat => IndexConfig::Flat,
            })
        }
    }
}

/// A library's immutable configuration, fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryConfig {
    pub name: String,
    pub dimension: u32,
    pub metric: Metric,
    pub index: IndexConfig,
}

/// Arbitrary JSON metadata. In JSON it is the value itself; in the binary formats
/// (postcard, which cannot describe self-describing values) it travels as JSON text.
#[derive(Clone, PartialEq, Default)]
pub struct Metadata(pub serde_json::Value);

impl Metadata {
    /// `true` for JSON `null`, the value of absent metadata.
    pub fn is_null(&self) -> bool {
        self.0.is_null()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.0.serialize(serializer)
        } else {
            serializer.serialize_str(&self.0.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            serde_json::Value::deserialize(deserializer).map(Metadata)
        } else {
            let text = <alloc::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            serde_json::from_str(&text)
                .map(Metadata)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// A document as stored in a WAL record: every id resolved, every vector validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentData {
    pub id: String,
    pub metadata: Metadata,
    pub chunks: Vec<ChunkData>,
}

/// One chunk of a document: its text, embedding and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkData {
    pub id: String,
    pub text: String,
    pub embedding: Vec<f32>,
    pub metadata: Metadata,
}
