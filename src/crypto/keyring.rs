//! The master keyring (DESIGN §15): the active master key wraps everything new; previous
//! keys only open what they wrapped before a `rewrap-master` moved it under the active one.

use super::keys::MasterKey;

pub struct MasterKeyring {
    active: MasterKey,
    previous: Vec<MasterKey>,
    /// The key the database was first set up with, which wrapped the rows recorded before
    /// key ids existed; the active key until start-up has read it from the database.
    original: Option<String>,
}

impl MasterKeyring {
    /// `previous` may repeat the active key or each other; repeats are dropped.
    pub fn new(active: MasterKey, previous: Vec<MasterKey>) -> Self {
        let mut kept: Vec<MasterKey> = Vec::with_capacity(previous.len());
        for key in previous {
            if key.key_id() != active.key_id() && !kept.iter().any(|k| k.key_id() == key.key_id()) {
                kept.push(key);
            }
        }
        Self {
            active,
            previous: kept,
            original: None,
        }
    }

    /// Names the key the database was first set up with (start-up reads it from the
    /// database's check value): rows without a key id were wrapped by it.
    pub fn set_original(&mut self, key_id: &str) {
        self.original = Some(key_id.to_owned());
    }

    /// The key that wraps new tenant keys and client secrets.
    pub fn active(&self) -> &MasterKey {
        &self.active
    }

    /// The key with this id, active or previous. A row recorded before key ids existed
    /// (`None`) was wrapped by the key the database was set up with, which start-up has
    /// checked is in the ring (the active key when it has not been named).
    pub fn get(&self, key_id: Option<&str>) -> Option<&MasterKey> {
        match key_id.or(self.original.as_deref()) {
            None => Some(&self.active),
            Some(id) => std::iter::once(&self.active)
                .chain(&self.previous)
                .find(|k| k.key_id() == id),
        }
    }

    /// Whether a key with this id is in the ring.
    pub fn contains(&self, key_id: &str) -> bool {
        self.get(Some(key_id)).is_some()
    }

    /// The ids of every key in the ring, the active one first.
    pub fn key_ids(&self) -> Vec<String> {
        std::iter::once(&self.active)
            .chain(&self.previous)
            .map(|k| k.key_id().to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_hex(&MasterKey::generate_hex()).unwrap()
    }

    #[test]
    fn the_ring_finds_each_key_by_its_id() {
        let (a, b) = (key(), key());
        let (a_id, b_id) = (a.key_id().to_owned(), b.key_id().to_owned());
        assert_eq!(a_id.len(), 16);
        let ring = MasterKeyring::new(a, vec![b]);
        assert_eq!(ring.get(Some(&a_id)).unwrap().key_id(), a_id);
        assert_eq!(ring.get(Some(&b_id)).unwrap().key_id(), b_id);
        assert!(ring.get(Some("0000000000000000")).is_none());
        assert_eq!(ring.get(None).unwrap().key_id(), a_id);
        assert_eq!(ring.key_ids(), vec![a_id, b_id]);
    }
}
