//! The opt-in estimate of distinct signers across hosts: a HyperLogLog sketch (Flajolet et
//! al., 2007) of keyed hashes of signers' canonical e-mail addresses, signed like a
//! checkpoint and served at `GET /c/{id}/sketch` only when `distinct_signers_key` is set.
//!
//! Why a small implementation here rather than a crate: the sketch crosses hosts, so its
//! registers, their hash and their byte layout are part of a documented format
//! (docs/checkpoints.md), which a crate's internals do not promise to keep.
//!
//! Each address is hashed with HMAC-SHA-256 under the key the listed hosts share; the
//! first 8 bytes, big-endian, are the 64-bit hash. With precision 10 (1,024 registers),
//! register `hash >> 54` keeps the largest rank seen, the rank being one more than the
//! number of leading zeros of `hash << 10` (at most 55). The estimate's standard error is
//! about 1.04 / √1024 ≈ 3 %. Without the key, a sketch is 1,024 small numbers that no one
//! can test an address against; with it, a host can tell that an address *may* have
//! signed elsewhere (README, "privacy").

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bits of the hash that choose the register.
pub const PRECISION: u32 = 10;
/// Number of registers.
pub const REGISTERS: usize = 1 << PRECISION;
/// The largest rank a register can hold.
const MAX_RANK: u8 = (64 - PRECISION + 1) as u8;

/// What the HMAC is computed over, before the canonical address.
const LABEL: &[u8] = b"picket distinct signer\0";

/// A HyperLogLog sketch of keyed address hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch {
    registers: Vec<u8>,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            registers: vec![0; REGISTERS],
        }
    }
}

/// The 64-bit keyed hash of a canonical address.
pub fn keyed_hash(key: &[u8], canonical: &str) -> u64 {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(LABEL);
    mac.update(canonical.as_bytes());
    let digest = mac.finalize().into_bytes();
    u64::from_be_bytes(digest[..8].try_into().expect("32 bytes"))
}

impl Sketch {
    pub fn insert(&mut self, hash: u64) {
        let index = (hash >> (64 - PRECISION)) as usize;
        let rest = hash << PRECISION;
        let rank = (rest.leading_zeros() + 1).min(u32::from(MAX_RANK)) as u8;
        let r = &mut self.registers[index];
        *r = (*r).max(rank);
    }

    /// The union of two sketches.
    pub fn merge(&mut self, other: &Sketch) {
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
    }

    /// The estimated number of distinct hashes inserted: the raw HyperLogLog estimate,
    /// with linear counting while it is small (below 2.5 m) and registers are empty.
    pub fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let e = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        e.round() as u64
    }

    pub fn to_base64(&self) -> String {
        B64.encode(&self.registers)
    }

    /// Exactly [`REGISTERS`] bytes, each a possible rank; `None` otherwise.
    pub fn from_base64(text: &str) -> Option<Sketch> {
        let registers = B64.decode(text).ok()?;
        (registers.len() == REGISTERS && registers.iter().all(|&r| r <= MAX_RANK))
            .then_some(Sketch { registers })
    }
}

/// The signed text of a sketch: which checkpoint it goes with, the signatures without an
/// address (counted as distinct: they cannot be compared), and the registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SketchNote {
    pub campaign: String,
    pub url: String,
    /// The sequence number of the checkpoint it was made with.
    pub sequence: u64,
    pub unkeyed: u64,
    pub sketch: Sketch,
}

impl SketchNote {
    pub fn body(&self) -> String {
        format!(
            "picket sketch v1\ncampaign {}\nurl {}\nsequence {}\nunkeyed {}\nregisters {}\n",
            self.campaign,
            self.url,
            self.sequence,
            self.unkeyed,
            self.sketch.to_base64()
        )
    }

    /// A body exactly as [`SketchNote::body`] writes it.
    pub fn parse(body: &str) -> Option<SketchNote> {
        let mut lines = body.lines();
        if lines.next() != Some("picket sketch v1") {
            return None;
        }
        let mut field = |name: &str| {
            lines
                .next()?
                .strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_string)
        };
        let note = SketchNote {
            campaign: field("campaign")?,
            url: field("url")?,
            sequence: field("sequence")?.parse().ok()?,
            unkeyed: field("unkeyed")?.parse().ok()?,
            sketch: Sketch::from_base64(&field("registers")?)?,
        };
        (note.body() == body).then_some(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(key: &[u8], addresses: impl Iterator<Item = String>) -> Sketch {
        let mut s = Sketch::default();
        for a in addresses {
            s.insert(keyed_hash(key, &a));
        }
        s
    }

    #[test]
    fn the_estimate_is_within_a_few_percent_and_a_union_counts_shared_signers_once() {
        let key = b"shared by the listed hosts";
        for n in [10u64, 1_000, 20_000] {
            let s = of(key, (0..n).map(|i| format!("p{i}@example.org")));
            let e = s.estimate() as f64;
            assert!(
                (e - n as f64).abs() <= (n as f64 * 0.1).max(1.0),
                "{n}: {e}"
            );
        }
        // Two hosts of 3,000 signers each, 1,000 of whom signed on both: 5,000 people.
        let a = of(key, (0..3_000).map(|i| format!("p{i}@example.org")));
        let mut b = of(key, (2_000..5_000).map(|i| format!("p{i}@example.org")));
        b.merge(&a);
        let e = b.estimate() as f64;
        assert!((e - 5_000.0).abs() < 500.0, "{e}");
    }

    #[test]
    fn another_key_gives_another_sketch_and_a_note_parses_back() {
        let addresses = || (0..50).map(|i| format!("p{i}@example.org"));
        assert_ne!(of(b"k1", addresses()), of(b"k2", addresses()));
        let note = SketchNote {
            campaign: "c".into(),
            url: "https://a.example".into(),
            sequence: 3,
            unkeyed: 2,
            sketch: of(b"k1", addresses()),
        };
        assert_eq!(SketchNote::parse(&note.body()), Some(note.clone()));
        assert_eq!(Sketch::from_base64(&B64.encode([99u8; REGISTERS])), None);
    }
}
