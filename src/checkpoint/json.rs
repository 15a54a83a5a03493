//! JSON objects read in document order with repeated keys detected.
//!
//! serde_json's maps keep the last of two equal keys. A checkpoint that names one tensor twice is
//! ambiguous, so the readers use this map, which records the first repeated key instead.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

/// A JSON object's entries in document order, and the first key that appeared twice.
pub struct UniqueMap<V> {
    /// Entries, first occurrence of each key.
    pub entries: Vec<(String, V)>,
    /// The first key seen more than once.
    pub duplicate: Option<String>,
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap<V>, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut out = UniqueMap { entries: Vec::new(), duplicate: None };
                while let Some(key) = map.next_key::<String>()? {
                    if seen.contains(&key) {
                        map.next_value::<IgnoredAny>()?;
                        out.duplicate.get_or_insert(key);
                        continue;
                    }
                    let value =
                        map.next_value::<V>().map_err(|e| de::Error::custom(format_args!("at key {key:?}: {e}")))?;
                    seen.insert(key.clone());
                    out.entries.push((key, value));
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}
