//! A timeline `cloud:` item → the API request it stands for.
//!
//! serde reads an internally tagged enum (`{ action: …, … }`) through a
//! buffer, so an error about one of its fields (`size_gib: big`,
//! `port: -5`, an unknown field) comes back without the field's name or
//! line. The item is therefore read as YAML first and turned into a
//! [`CloudRequest`] here; on an error, the field is the last one of the
//! shortest leading part of the item that gives the same error (serde reads
//! fields in order and stops at the first bad one), narrowed inside maps and
//! lists the same way, and the error points at it:
//! `timeline[0].cloud.size_gib: invalid type: string "big", expected u64`.

use crate::load::{LoadError, Source};
use krrish_cloud::CloudRequest;
use serde_yaml::{Mapping, Value};

/// A timeline item: its index and its lines (1-based, `end` excluded).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    pub index: usize,
    pub line: usize,
    pub end: usize,
}

/// One step of a path below `cloud`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse(v: &Value) -> Result<CloudRequest, String> {
    serde_yaml::from_value(v.clone()).map_err(|e| e.to_string())
}

fn key_name(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// The request `value` stands for, or an error at the field it is about.
pub(crate) fn cloud_request(
    src: &Source<'_>,
    item: Item,
    value: &Value,
) -> Result<CloudRequest, LoadError> {
    let err = match parse(value) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    let path = blame(value, &err);
    let mut shown = format!("timeline[{}].cloud", item.index);
    for seg in &path {
        match seg {
            Seg::Key(k) => shown.push_str(&format!(".{k}")),
            Seg::Index(i) => shown.push_str(&format!("[{i}]")),
        }
    }
    // The deepest key of the path found in the item's lines: an unknown
    // field points at itself, any other error at the value.
    let keys: Vec<&str> = std::iter::once("cloud")
        .chain(path.iter().filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        }))
        .collect();
    let unknown_field = err.starts_with("unknown field");
    let at = (1..=keys.len()).rev().find_map(|n| {
        let k = src.find_key_path(item.line, item.end, &keys[..n])?;
        Some(if unknown_field && n == keys.len() {
            k.key()
        } else {
            k.value()
        })
    });
    Err(src.error(at.or(Some((item.line, 1))), format!("{shown}: {err}")))
}

/// The path of the field `err` (from parsing `v`) is about; empty for the
/// item as a whole (a missing field, not a map).
fn blame(v: &Value, err: &str) -> Vec<Seg> {
    if err.starts_with("missing field") {
        return Vec::new();
    }
    let Value::Mapping(m) = v else {
        return Vec::new();
    };
    let same = |candidate: Mapping| parse(&Value::Mapping(candidate)).err().as_deref() == Some(err);
    let action = Value::String("action".into());
    let mut prefix = Mapping::new();
    if let Some(a) = m.get(&action) {
        prefix.insert(action.clone(), a.clone());
        if same(prefix.clone()) {
            return vec![Seg::Key("action".into())];
        }
    }
    for (k, val) in m.iter().filter(|(k, _)| **k != action) {
        prefix.insert(k.clone(), val.clone());
        if same(prefix.clone()) {
            let mut path = vec![Seg::Key(key_name(k))];
            narrow(&mut path, val, &|inner: Value| {
                let mut p = prefix.clone();
                p.insert(k.clone(), inner);
                same(p)
            });
            return path;
        }
    }
    Vec::new()
}

/// Narrows `path` inside `v` (a map or a list): `same` says whether the
/// item with `v` replaced by a part of it still gives the error.
fn narrow(path: &mut Vec<Seg>, v: &Value, same: &dyn Fn(Value) -> bool) {
    match v {
        Value::Mapping(m) => {
            let mut prefix = Mapping::new();
            for (k, val) in m {
                prefix.insert(k.clone(), val.clone());
                if same(Value::Mapping(prefix.clone())) {
                    path.push(Seg::Key(key_name(k)));
                    narrow(path, val, &|inner: Value| {
                        let mut p = prefix.clone();
                        p.insert(k.clone(), inner);
                        same(Value::Mapping(p))
                    });
                    return;
                }
            }
        }
        Value::Sequence(s) => {
            for i in 0..s.len() {
                let prefix = s[..=i].to_vec();
                if same(Value::Sequence(prefix.clone())) {
                    path.push(Seg::Index(i));
                    narrow(path, &s[i], &|inner: Value| {
                        let mut p = prefix.clone();
                        p[i] = inner;
                        same(Value::Sequence(p))
                    });
                    return;
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(yaml: &str) -> Vec<Seg> {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        let err = parse(&v).unwrap_err();
        blame(&v, &err)
    }

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn the_field_an_error_is_about() {
        assert_eq!(
            path_of("{ action: create-volume, name: v, size_gib: big }"),
            [key("size_gib")]
        );
        // The action found wherever it is written.
        assert_eq!(
            path_of("{ size_gib: big, name: v, action: create-volume }"),
            [key("size_gib")]
        );
        assert_eq!(path_of("{ action: frobnicate, name: v }"), [key("action")]);
        assert_eq!(
            path_of("{ action: create-cache, name: c, shards: [[vm-1, vm-2], a] }"),
            [key("shards"), Seg::Index(1)]
        );
        assert_eq!(
            path_of("{ action: add-listener, lb: l, port: 80, health_check: { interval_ms: 2000, rise: 2 } }"),
            [key("health_check"), key("rise")]
        );
        // Missing fields are the item's.
        assert_eq!(path_of("{ action: create-volume, name: v }"), []);
        assert_eq!(path_of("{ name: v }"), []);
        assert_eq!(path_of("create-volume"), []);
    }
}
