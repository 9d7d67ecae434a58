//! The active-model pointer: the one small object that names the served version, and the
//! SHA-256 of that version's model file, so that a reader can tell a whole file from a damaged
//! or half-written one before serving it. Data directories written before the pointer carried
//! a hash hold just the number (`"3\n"`); those are still read.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What the pointer says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointer {
    pub version: u64,
    /// The hex SHA-256 of the version's model file; absent in pointers of the old format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Pointer {
    pub fn to_bytes(&self) -> Bytes {
        let mut json = serde_json::to_vec(self).expect("a pointer serialises");
        json.push(b'\n');
        Bytes::from(json)
    }

    /// Reads a pointer in either format; the error says what was found instead.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if let Ok(version) = text.parse::<u64>() {
            return Ok(Self { version, sha256: None });
        }
        serde_json::from_str(text).map_err(|_| {
            format!(
                "expected {{\"version\": N, \"sha256\": \"...\"}} or a version number, found {:?}",
                crate::data::excerpt(text)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats_and_names_what_it_found_otherwise() {
        let pointer = Pointer { version: 7, sha256: Some("ab".repeat(32)) };
        assert_eq!(Pointer::parse(&pointer.to_bytes()).unwrap(), pointer);
        assert_eq!(Pointer::parse(b"3\n").unwrap(), Pointer { version: 3, sha256: None });
        let error = Pointer::parse(b"seven").unwrap_err();
        assert!(error.contains("\"seven\""), "{error}");
        assert!(Pointer::parse(b"{\"version\": 1, \"extra\": 2}").is_err());
    }
}
