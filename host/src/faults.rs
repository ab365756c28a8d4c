//! Fault injection: an `ObjectStore` wrapper that fails, stalls and tears storage
//! calls at configurable rates, so the real binary can be tested against the lies and
//! failures a real object store (or the network in front of it) produces.
//!
//! Enabled by `ARRWDB_FAULTS`, a comma-separated list (all optional):
//!
//! ```text
//! put_fail=0.2      a PUT fails; half of these fail *after* storing the object
//!                   (the response was lost: an ambiguous write)
//! get_fail=0.1      a GET, HEAD or LIST fails
//! truncate=0.05     a PUT stores only a prefix of the bytes and reports an error
//! delay_ms=0..20    every call first sleeps a uniformly drawn time
//! seed=7            the random sequence (default 1)
//! for_ms=3000       faults stop this long after the store opens (recovery test)
//! ```
//!
//! A truncated PUT always reports an error: object stores check the declared
//! `Content-Length` (and S3 the checksum), so a torn object can only appear together
//! with a failed request (or from corruption at rest, which the checksums catch). A
//! store that acknowledged a torn object would break every database; that lie is out of
//! the model and not simulated.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Rates and knobs of the fault injector (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub put_fail: f64,
    pub get_fail: f64,
    pub truncate: f64,
    pub delay_ms: (u64, u64),
    pub seed: u64,
    pub for_ms: Option<u64>,
}

impl FaultConfig {
    /// Parses `put_fail=0.2,get_fail=0.1,delay_ms=0..20,truncate=0.05,seed=7,for_ms=3000`.
    ///
    /// # Errors
    /// An unknown key, a malformed number, or a rate outside 0..=1.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut config = FaultConfig {
            put_fail: 0.0,
            get_fail: 0.0,
            truncate: 0.0,
            delay_ms: (0, 0),
            seed: 1,
            for_ms: None,
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("ARRWDB_FAULTS: `{part}` is not key=value"))?;
            let rate = || -> anyhow::Result<f64> {
                let r: f64 = value.parse()?;
                anyhow::ensure!((0.0..=1.0).contains(&r), "rate {r} is not within 0..=1");
                Ok(r)
            };
            let bad = |e: anyhow::Error| anyhow::anyhow!("ARRWDB_FAULTS: `{part}`: {e}");
            match key {
                "put_fail" => config.put_fail = rate().map_err(bad)?,
                "get_fail" => config.get_fail = rate().map_err(bad)?,
                "truncate" => config.truncate = rate().map_err(bad)?,
                "seed" => config.seed = value.parse().map_err(|e| bad(anyhow::Error::new(e)))?,
                "for_ms" => {
                    config.for_ms = Some(value.parse().map_err(|e| bad(anyhow::Error::new(e)))?);
                }
                "delay_ms" => {
                    let (lo, hi) = value.split_once("..").unwrap_or((value, value));
                    let lo: u64 = lo.parse().map_err(|e| bad(anyhow::Error::new(e)))?;
                    let hi: u64 = hi.parse().map_err(|e| bad(anyhow::Error::new(e)))?;
                    anyhow::ensure!(lo <= hi, "ARRWDB_FAULTS: `{part}`: empty range");
                    config.delay_ms = (lo, hi);
                }
                other => anyhow::bail!(
                    "ARRWDB_FAULTS: unknown key `{other}` (put_fail, get_fail, truncate, delay_ms, seed, for_ms)"
                ),
            }
        }
        Ok(config)
    }
}

/// The wrapper. Every decision comes from one seeded splitmix64 sequence.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    state: Mutex<u64>,
    opened: Instant,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        FaultyStore {
            state: Mutex::new(config.seed),
            inner,
            config,
            opened: Instant::now(),
        }
    }

    fn active(&self) -> bool {
        self.config
            .for_ms
            .is_none_or(|ms| self.opened.elapsed() < Duration::from_millis(ms))
    }

    fn next(&self) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `rate` (never once the faults have stopped).
    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.active() && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    async fn delay(&self) {
        let (lo, hi) = self.config.delay_ms;
        if hi == 0 || !self.active() {
            return;
        }
        let ms = lo + self.next() % (hi - lo + 1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn error(&self, what: &str, location: &Path) -> object_store::Error {
        object_store::Error::Generic {
            store: "faults",
            source: format!("injected fault: {what} {location}").into(),
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.delay().await;
        if self.roll(self.config.truncate) {
            let bytes: Bytes = payload.into();
            let cut = if bytes.is_empty() {
                0
            } else {
                (self.next() % bytes.len() as u64) as usize
            };
            let torn = PutPayload::from(bytes.slice(..cut));
            // Whatever the store says about the torn object, the client saw a failure.
            let _ = self.inner.put_opts(location, torn, opts).await;
            return Err(self.error("torn PUT", location));
        }
        if self.roll(self.config.put_fail) {
            if self.next().is_multiple_of(2) {
                return Err(self.error("PUT refused", location));
            }
            self.inner.put_opts(location, payload, opts).await?;
            return Err(self.error("PUT response lost", location));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.delay().await;
        if self.roll(self.config.put_fail) {
            return Err(self.error("multipart PUT refused", location));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.delay().await;
        if self.roll(self.config.get_fail) {
            return Err(self.error("GET failed", location));
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.roll(self.config.get_fail) {
            let e = self.error("LIST failed", prefix.unwrap_or(&Path::default()));
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.roll(self.config.get_fail) {
            let e = self.error("LIST failed", prefix.unwrap_or(&Path::default()));
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.delay().await;
        if self.roll(self.config.get_fail) {
            return Err(self.error("LIST failed", prefix.unwrap_or(&Path::default())));
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.delay().await;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt as _, PutMode};

    use super::*;

    #[test]
    fn parses_every_knob_and_refuses_nonsense() {
        let c = FaultConfig::parse(
            "put_fail=0.2, get_fail=0.1,delay_ms=0..20,truncate=0.05,seed=7,for_ms=300",
        )
        .expect("parse");
        assert_eq!(
            c,
            FaultConfig {
                put_fail: 0.2,
                get_fail: 0.1,
                truncate: 0.05,
                delay_ms: (0, 20),
                seed: 7,
                for_ms: Some(300)
            }
        );
        assert_eq!(
            FaultConfig::parse("delay_ms=5").expect("one").delay_ms,
            (5, 5)
        );
        for bad in [
            "put_fail=2",
            "nope=1",
            "put_fail",
            "delay_ms=9..1",
            "seed=x",
        ] {
            assert!(FaultConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_failed_or_torn_put_is_never_reported_as_success() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let config = FaultConfig::parse("put_fail=0.3,truncate=0.3,seed=3").expect("parse");
        let store = FaultyStore::new(inner.clone(), config);
        let payload = vec![7u8; 1000];
        let (mut ok, mut failed) = (0, 0);
        for i in 0..200 {
            let path = Path::from(format!("k/{i}"));
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match store
                .put_opts(&path, PutPayload::from(payload.clone()), opts)
                .await
            {
                Ok(_) => {
                    ok += 1;
                    let stored = inner.get(&path).await.expect("acknowledged").bytes().await;
                    assert_eq!(
                        stored.expect("bytes").len(),
                        1000,
                        "an acknowledged PUT is whole"
                    );
                }
                Err(_) => failed += 1,
            }
        }
        assert!(ok > 40 && failed > 40, "ok {ok}, failed {failed}");
    }

    #[tokio::test]
    async fn faults_stop_after_for_ms() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = FaultyStore::new(
            inner,
            FaultConfig::parse("put_fail=1,for_ms=50").expect("parse"),
        );
        let path = Path::from("a");
        assert!(
            store
                .put(&path, PutPayload::from_static(b"x"))
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            store
                .put(&path, PutPayload::from_static(b"x"))
                .await
                .is_ok()
        );
    }
}
