//! The data model: libraries, documents and chunks.

use crate::text::TextConfig;
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

/// Index kind and parameters of a library.
///
/// In JSON it is internally tagged (`{"type":"hnsw","m":16}`, missing parameters take
/// their defaults); in the binary formats it is a plain enum, because postcard cannot
/// decode internally tagged enums.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IndexConfig {
    /// Exact search over every live vector.
    #[default]
    Flat,
    Hnsw(HnswParams),
    Ivf(IvfParams),
    KdTree(KdTreeParams),
    Lsh(LshParams),
}

impl IndexConfig {
    /// Checks parameter ranges.
    ///
    /// # Errors
    /// `Invalid`, naming the parameter and its allowed range.
    pub fn validate(&self) -> crate::error::Result<()> {
        match self {
            IndexConfig::Flat => Ok(()),
            IndexConfig::Hnsw(p) => p.validate(),
            IndexConfig::Ivf(p) => p.validate(),
            IndexConfig::KdTree(p) => p.validate(),
            IndexConfig::Lsh(p) => p.validate(),
        }
    }
}

mod index_repr {
    use super::{HnswParams, IvfParams, KdTreeParams, LshParams};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase")]
    pub(super) enum Tagged {
        Flat,
        Hnsw(HnswParams),
        Ivf(IvfParams),
        KdTree(KdTreeParams),
        Lsh(LshParams),
    }

    #[derive(Serialize, Deserialize)]
    pub(super) enum Plain {
        Flat,
        Hnsw(HnswParams),
        Ivf(IvfParams),
        KdTree(KdTreeParams),
        Lsh(LshParams),
    }
}

macro_rules! convert_index_repr {
    ($from:ty => $to:ty) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                type From = $from;
                type To = $to;
                match value {
                    From::Flat => To::Flat,
                    From::Hnsw(p) => To::Hnsw(p),
                    From::Ivf(p) => To::Ivf(p),
                    From::KdTree(p) => To::KdTree(p),
                    From::Lsh(p) => To::Lsh(p),
                }
            }
        }
    };
}

convert_index_repr!(IndexConfig => index_repr::Tagged);
convert_index_repr!(IndexConfig => index_repr::Plain);
convert_index_repr!(index_repr::Tagged => IndexConfig);
convert_index_repr!(index_repr::Plain => IndexConfig);

impl Serialize for IndexConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            index_repr::Tagged::from(self.clone()).serialize(serializer)
        } else {
            index_repr::Plain::from(self.clone()).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for IndexConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            index_repr::Tagged::deserialize(deserializer).map(Into::into)
        } else {
            index_repr::Plain::deserialize(deserializer).map(Into::into)
        }
    }
}

/// Compression of the stored vectors that the exact scan reads first (see
/// [`crate::index::quant`]); the full vectors stay for rescoring.
///
/// In JSON it is internally tagged (`{"type":"sq8","oversample":4}`), in the binary
/// formats a plain enum, like [`IndexConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantizationConfig {
    /// Full vectors only.
    #[default]
    None,
    /// One byte per dimension (per-dimension min/max, trained at 1,000 vectors).
    Sq8(QuantizationParams),
    /// One bit per dimension (the sign).
    Binary(QuantizationParams),
}

/// Parameters of a quantized scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantizationParams {
    /// Candidates kept per result (`k × oversample`) before rescoring with full vectors.
    pub oversample: u32,
}

impl Default for QuantizationParams {
    fn default() -> Self {
        QuantizationParams { oversample: 4 }
    }
}

impl QuantizationConfig {
    /// Checks parameter ranges.
    ///
    /// # Errors
    /// `Invalid`, naming the parameter and its allowed range.
    pub fn validate(&self) -> crate::error::Result<()> {
        match self {
            QuantizationConfig::None => Ok(()),
            QuantizationConfig::Sq8(p) | QuantizationConfig::Binary(p) => {
                check_range("oversample", p.oversample.into(), 1, 64)
            }
        }
    }
}

mod quant_repr {
    use super::QuantizationParams;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase")]
    pub(super) enum Tagged {
        None,
        Sq8(QuantizationParams),
        Binary(QuantizationParams),
    }

    #[derive(Serialize, Deserialize)]
    pub(super) enum Plain {
        None,
        Sq8(QuantizationParams),
        Binary(QuantizationParams),
    }
}

macro_rules! convert_quant_repr {
    ($from:ty => $to:ty) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                type From = $from;
                type To = $to;
                match value {
                    From::None => To::None,
                    From::Sq8(p) => To::Sq8(p),
                    From::Binary(p) => To::Binary(p),
                }
            }
        }
    };
}

convert_quant_repr!(QuantizationConfig => quant_repr::Tagged);
convert_quant_repr!(QuantizationConfig => quant_repr::Plain);
convert_quant_repr!(quant_repr::Tagged => QuantizationConfig);
convert_quant_repr!(quant_repr::Plain => QuantizationConfig);

impl Serialize for QuantizationConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            quant_repr::Tagged::from(*self).serialize(serializer)
        } else {
            quant_repr::Plain::from(*self).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for QuantizationConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            quant_repr::Tagged::deserialize(deserializer).map(Into::into)
        } else {
            quant_repr::Plain::deserialize(deserializer).map(Into::into)
        }
    }
}

/// Largest HNSW `ef_construction` / `ef_search`, and of a search's `params.ef`.
pub const MAX_EF: u32 = 4096;
/// Largest IVF `nlist`, and of a search's `params.nprobe` (which cannot probe more).
pub const MAX_NLIST: u32 = 65_536;

fn check_range(name: &str, value: u64, min: u64, max: u64) -> crate::error::Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(crate::error::Error::Invalid(alloc::format!(
            "index parameter `{name}` must be between {min} and {max}, got {value}"
        )))
    }
}

/// HNSW parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswParams {
    /// Neighbours per node on upper layers (layer 0 keeps `2 * m`).
    pub m: u32,
    /// Candidate list size while inserting.
    pub ef_construction: u32,
    /// Default candidate list size while searching (per-query `params.ef` overrides).
    pub ef_search: u32,
    /// Seed of the level assignment.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            seed: 0x5eed,
        }
    }
}

impl HnswParams {
    fn validate(&self) -> crate::error::Result<()> {
        check_range("m", self.m.into(), 2, 128)?;
        check_range(
            "ef_construction",
            self.ef_construction.into(),
            1,
            MAX_EF.into(),
        )?;
        check_range("ef_search", self.ef_search.into(), 1, MAX_EF.into())
    }
}

/// IVF parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvfParams {
    /// Number of lists (k-means centroids).
    pub nlist: u32,
    /// Default number of lists probed per query (per-query `params.nprobe` overrides).
    pub nprobe: u32,
    /// The index trains on the first `train_size` vectors; until then it searches exactly.
    pub train_size: u32,
    /// Product quantization of the residuals, with `pq_m` sub-quantizers (0 = off).
    pub pq_m: u32,
    /// Seed of k-means++ initialisation.
    pub seed: u64,
}

impl Default for IvfParams {
    fn default() -> Self {
        IvfParams {
            nlist: 256,
            nprobe: 32,
            train_size: 10_000,
            pq_m: 0,
            seed: 0x5eed,
        }
    }
}

impl IvfParams {
    fn validate(&self) -> crate::error::Result<()> {
        check_range("nlist", self.nlist.into(), 1, MAX_NLIST.into())?;
        check_range("nprobe", self.nprobe.into(), 1, self.nlist.into())?;
        check_range(
            "train_size",
            self.train_size.into(),
            self.nlist.into(),
            10_000_000,
        )?;
        check_range("pq_m", self.pq_m.into(), 0, 4096)
    }
}

/// KD-tree parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KdTreeParams {
    /// Largest number of slots in a leaf.
    pub leaf_size: u32,
}

impl Default for KdTreeParams {
    fn default() -> Self {
        KdTreeParams { leaf_size: 32 }
    }
}

impl KdTreeParams {
    fn validate(&self) -> crate::error::Result<()> {
        check_range("leaf_size", self.leaf_size.into(), 1, 65_536)
    }
}

/// LSH (random hyperplanes) parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LshParams {
    /// Number of hash tables.
    pub num_tables: u32,
    /// Bits (hyperplanes) per table.
    pub hash_size: u32,
    /// Seed of the hyperplanes.
    pub seed: u64,
}

impl Default for LshParams {
    fn default() -> Self {
        LshParams {
            num_tables: 16,
            hash_size: 12,
            seed: 0x5eed,
        }
    }
}

impl LshParams {
    fn validate(&self) -> crate::error::Result<()> {
        check_range("num_tables", self.num_tables.into(), 1, 256)?;
        check_range("hash_size", self.hash_size.into(), 1, 64)?;
        // The hyperplanes are stored (num_tables × hash_size × dimension floats): bound them.
        let planes = u64::from(self.num_tables) * u64::from(self.hash_size);
        check_range("num_tables * hash_size", planes, 1, 1024)
    }
}

/// A library's configuration, fixed at creation except `index`, which
/// [`crate::Command::RebuildIndex`] replaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryConfig {
    pub name: String,
    pub dimension: u32,
    pub metric: Metric,
    pub index: IndexConfig,
    /// Fixed at creation.
    pub quantization: QuantizationConfig,
    /// Text analysis and BM25 parameters. Fixed at creation.
    pub text: TextConfig,
    /// The embedding model whose vectors this library holds, when the server embeds
    /// text for it. Fixed at creation, so vectors of another model are refused.
    pub embedding: Option<EmbeddingConfig>,
}

/// Which embedding provider (configured on the server, by name) and model produce a
/// library's vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    pub provider: String,
    pub model: String,
}

impl EmbeddingConfig {
    /// Checks the names.
    ///
    /// # Errors
    /// `Invalid` for an empty or overlong (over 256 bytes) provider or model name.
    pub fn validate(&self) -> crate::error::Result<()> {
        for (what, value) in [("provider", &self.provider), ("model", &self.model)] {
            if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
                return Err(crate::error::Error::invalid(alloc::format!(
                    "embedding {what} must be 1 to 256 bytes without control characters"
                )));
            }
        }
        Ok(())
    }
}

/// [`LibraryConfig`] as formats v1 stored it (before text analysis existed).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct LibraryConfigV1 {
    name: String,
    dimension: u32,
    metric: Metric,
    index: IndexConfig,
    quantization: QuantizationConfig,
}

impl From<LibraryConfigV1> for LibraryConfig {
    fn from(v1: LibraryConfigV1) -> Self {
        LibraryConfig {
            name: v1.name,
            dimension: v1.dimension,
            metric: v1.metric,
            index: v1.index,
            quantization: v1.quantization,
            text: TextConfig::default(),
            embedding: None,
        }
    }
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
