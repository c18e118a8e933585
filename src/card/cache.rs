//! Rendered cards kept in memory, and the one way cards are rendered while picket runs.
//!
//! Drawing a card costs tens of milliseconds of CPU, so a crowd asking for the same card
//! must not draw it once each: the first asker draws it (on the blocking pool, at most
//! [`PARALLEL`] at a time), the others wait for that drawing, and later askers get the
//! bytes. The cache holds the most recently used [`CAPACITY`] cards; a card's key is a
//! hash of everything on it, so a changed campaign file gives a new card, never a stale one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, Semaphore};

use super::{CardError, Notice, Size, render};

/// Cards kept: a few campaigns × their days × two sizes.
pub const CAPACITY: usize = 64;

/// Cards drawn at once: the machine keeps cores for everything else.
const PARALLEL: usize = 2;

/// One rendered card.
pub struct Rendered {
    pub png: Vec<u8>,
    /// A strong ETag (quoted), the same for the same card on every host and restart.
    pub etag: String,
}

struct Entry {
    cell: Arc<OnceCell<Arc<Rendered>>>,
    used: u64,
}

/// The card cache; cheap to share behind an `Arc`.
pub struct Cards {
    entries: Mutex<(HashMap<[u8; 32], Entry>, u64)>,
    capacity: usize,
    drawing: Semaphore,
}

impl Default for Cards {
    fn default() -> Self {
        Cards::new(CAPACITY)
    }
}

impl Cards {
    pub fn new(capacity: usize) -> Cards {
        Cards {
            entries: Mutex::new((HashMap::new(), 0)),
            capacity: capacity.max(1),
            drawing: Semaphore::new(PARALLEL),
        }
    }

    /// The card if it was drawn already; never draws.
    pub fn cached(&self, notice: &Notice, size: Size) -> Option<Arc<Rendered>> {
        let key = notice.key(size);
        let mut guard = crate::sync::lock(&self.entries);
        let (map, tick) = &mut *guard;
        *tick += 1;
        let e = map.get_mut(&key)?;
        e.used = *tick;
        e.cell.get().cloned()
    }

    /// The card, drawn now if no one has drawn it yet.
    pub async fn get(&self, notice: &Notice, size: Size) -> Result<Arc<Rendered>, CardError> {
        let key = notice.key(size);
        let cell = self.cell(key);
        cell.get_or_try_init(|| async {
            let _turn = self
                .drawing
                .acquire()
                .await
                .map_err(|e| CardError::Aborted(e.to_string()))?;
            let owned = notice.clone();
            let png = tokio::task::spawn_blocking(move || render(&owned, size))
                .await
                .map_err(|e| CardError::Aborted(e.to_string()))??;
            Ok(Arc::new(Rendered {
                png,
                etag: format!("\"{}\"", hex::encode(&key[..16])),
            }))
        })
        .await
        .cloned()
    }

    /// Cards held now (drawn or being drawn).
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.entries).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key's cell, made (and the least recently used one dropped) if new.
    fn cell(&self, key: [u8; 32]) -> Arc<OnceCell<Arc<Rendered>>> {
        let mut guard = crate::sync::lock(&self.entries);
        let (map, tick) = &mut *guard;
        *tick += 1;
        let now = *tick;
        if let Some(e) = map.get_mut(&key) {
            e.used = now;
            return e.cell.clone();
        }
        if map.len() >= self.capacity
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        let cell = Arc::new(OnceCell::new());
        map.insert(
            key,
            Entry {
                cell: cell.clone(),
                used: now,
            },
        );
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_card_is_drawn_once_and_the_least_recently_used_is_dropped_when_full() {
        let cards = Cards::new(2);
        let a = super::super::tests::notice();
        let b = Notice {
            title: "B".into(),
            ..a.clone()
        };
        let c = Notice {
            title: "C".into(),
            ..a.clone()
        };
        assert!(cards.cached(&a, Size::Square).is_none());
        let (x, y) = tokio::join!(cards.get(&a, Size::Square), cards.get(&a, Size::Square));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(Arc::ptr_eq(&x, &y), "two askers, one drawing");
        assert_eq!(x.etag.len(), 34);
        cards.get(&b, Size::Square).await.unwrap();
        // `a` was used after `b`: adding `c` drops `b`.
        assert!(cards.cached(&a, Size::Square).is_some());
        cards.get(&c, Size::Square).await.unwrap();
        assert_eq!(cards.len(), 2);
        assert!(cards.cached(&b, Size::Square).is_none());
        assert!(cards.cached(&a, Size::Square).is_some());
    }
}
