//! The tensors of the Open Inference Protocol: their datatypes, and their elements as `f64`,
//! read from JSON `data` (flat or nested, as the protocol allows) or from the little-endian bytes
//! of Triton's binary tensor extension. Every element is checked against its datatype: an
//! integer tensor holds integers in its type's range, an FP32 one values an `f32` can hold.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

/// The datatypes an input may have: the numeric ones (not BOOL, BYTES, FP16 or BF16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Fp64,
    Fp32,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
}

const DATATYPES: [Datatype; 10] = [
    Datatype::Fp64,
    Datatype::Fp32,
    Datatype::Int8,
    Datatype::Int16,
    Datatype::Int32,
    Datatype::Int64,
    Datatype::Uint8,
    Datatype::Uint16,
    Datatype::Uint32,
    Datatype::Uint64,
];

impl Datatype {
    /// The datatype the protocol names `name`, or why it cannot be an input here.
    pub fn parse(name: &str) -> Result<Self, String> {
        DATATYPES.into_iter().find(|datatype| datatype.name() == name).ok_or_else(|| {
            let known: Vec<_> = DATATYPES.iter().map(|datatype| datatype.name()).collect();
            format!("datatype {name:?} is not supported: inputs are one of {}", known.join(", "))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Datatype::Fp64 => "FP64",
            Datatype::Fp32 => "FP32",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
        }
    }

    /// Bytes per element in a binary tensor.
    pub fn size(self) -> usize {
        match self {
            Datatype::Int8 | Datatype::Uint8 => 1,
            Datatype::Int16 | Datatype::Uint16 => 2,
            Datatype::Fp32 | Datatype::Int32 | Datatype::Uint32 => 4,
            Datatype::Fp64 | Datatype::Int64 | Datatype::Uint64 => 8,
        }
    }

    /// The least and greatest value of an integer datatype; `None` for the floating ones.
    fn integer_range(self) -> Option<(i128, i128)> {
        let range = |min: i128, max: i128| Some((min, max));
        match self {
            Datatype::Fp64 | Datatype::Fp32 => None,
            Datatype::Int8 => range(i8::MIN.into(), i8::MAX.into()),
            Datatype::Int16 => range(i16::MIN.into(), i16::MAX.into()),
            Datatype::Int32 => range(i32::MIN.into(), i32::MAX.into()),
            Datatype::Int64 => range(i64::MIN.into(), i64::MAX.into()),
            Datatype::Uint8 => range(0, u8::MAX.into()),
            Datatype::Uint16 => range(0, u16::MAX.into()),
            Datatype::Uint32 => range(0, u32::MAX.into()),
            Datatype::Uint64 => range(0, u64::MAX.into()),
        }
    }

    /// The elements of a binary tensor, whose length the caller has checked is a whole number
    /// of elements.
    pub fn decode(self, bytes: &[u8]) -> Vec<f64> {
        match self {
            Datatype::Fp64 => each(bytes, f64::from_le_bytes),
            Datatype::Fp32 => each(bytes, |b| f32::from_le_bytes(b).into()),
            Datatype::Int8 => each(bytes, |b| i8::from_le_bytes(b).into()),
            Datatype::Int16 => each(bytes, |b| i16::from_le_bytes(b).into()),
            Datatype::Int32 => each(bytes, |b| i32::from_le_bytes(b).into()),
            Datatype::Int64 => each(bytes, |b| i64::from_le_bytes(b) as f64),
            Datatype::Uint8 => each(bytes, |b| u8::from_le_bytes(b).into()),
            Datatype::Uint16 => each(bytes, |b| u16::from_le_bytes(b).into()),
            Datatype::Uint32 => each(bytes, |b| u32::from_le_bytes(b).into()),
            Datatype::Uint64 => each(bytes, |b| u64::from_le_bytes(b) as f64),
        }
    }

    /// A JSON element as a value of this datatype, or why it is not one.
    pub fn value(self, number: JsonNumber) -> Result<f64, String> {
        let Some((min, max)) = self.integer_range() else {
            let value = number.as_f64();
            return match self == Datatype::Fp32 && (value as f32).is_infinite() {
                true => Err(format!("{value} is beyond the range of FP32")),
                false => Ok(if self == Datatype::Fp32 { f64::from(value as f32) } else { value }),
            };
        };
        let integer = match number {
            JsonNumber::Int(value) => i128::from(value),
            JsonNumber::Uint(value) => i128::from(value),
            JsonNumber::Float(value) => {
                return Err(format!("{value} is not an integer, as {} needs", self.name()));
            }
        };
        match (min..=max).contains(&integer) {
            true => Ok(integer as f64),
            false => Err(format!("{integer} is beyond the range of {} ({min} to {max})", self.name())),
        }
    }
}

/// The elements of little-endian `bytes`, `N` bytes each.
fn each<const N: usize>(bytes: &[u8], value: impl Fn([u8; N]) -> f64) -> Vec<f64> {
    bytes.chunks_exact(N).map(|chunk| value(chunk.try_into().expect("chunks of N bytes"))).collect()
}

/// A number of a JSON tensor, as written: the datatype decides which are allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonNumber {
    Int(i64),
    Uint(u64),
    Float(f64),
}

impl JsonNumber {
    fn as_f64(self) -> f64 {
        match self {
            JsonNumber::Int(value) => value as f64,
            JsonNumber::Uint(value) => value as f64,
            JsonNumber::Float(value) => value,
        }
    }
}

/// A tensor's JSON `data`, flattened in row-major order: a flat list or lists nested as the
/// shape (the protocol allows both; the element count is checked against the shape). Elements
/// that are not numbers (the strings of BYTES, the booleans of BOOL) are not kept: the first is
/// noted, so that the datatype can be refused first and the element after.
#[derive(Debug, Default, PartialEq)]
pub struct Elements {
    pub numbers: Vec<JsonNumber>,
    /// The first element that is not a number, as JSON.
    pub not_a_number: Option<String>,
}

impl<'de> Deserialize<'de> for Elements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut elements = Elements::default();
        Nested(&mut elements).deserialize(deserializer)?;
        Ok(elements)
    }
}

impl Elements {
    fn push(&mut self, number: JsonNumber) {
        self.numbers.push(number);
    }

    fn note(&mut self, element: String) {
        self.not_a_number.get_or_insert(element);
    }
}

/// An element or a list (of lists) of elements, appended to the elements.
struct Nested<'a>(&'a mut Elements);

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("elements, in a flat list or lists nested as the shape")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.0.push(JsonNumber::Int(value));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.0.push(JsonNumber::Uint(value));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.0.push(JsonNumber::Float(value));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.0.note(format!("{value:?}"));
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.0.note(value.to_string());
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.note("null".to_owned());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Nested(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_elements_are_little_endian_of_their_datatype() {
        let fp32: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(Datatype::Fp32.decode(&fp32), [1.5, -2.0]);
        assert_eq!(Datatype::Int16.decode(&(-3i16).to_le_bytes()), [-3.0]);
        assert_eq!(Datatype::Uint8.decode(&[255, 7]), [255.0, 7.0]);
        assert_eq!(Datatype::Fp64.decode(&0.1f64.to_le_bytes()), [0.1]);
    }

    #[test]
    fn json_elements_must_fit_their_datatype() {
        assert_eq!(Datatype::Int8.value(JsonNumber::Int(-128)), Ok(-128.0));
        assert!(Datatype::Int8.value(JsonNumber::Int(128)).unwrap_err().contains("range of INT8"));
        assert!(Datatype::Uint32.value(JsonNumber::Int(-1)).unwrap_err().contains("range of UINT32"));
        assert!(Datatype::Int32.value(JsonNumber::Float(1.5)).unwrap_err().contains("not an integer"));
        assert_eq!(Datatype::Fp32.value(JsonNumber::Float(0.1)), Ok(f64::from(0.1f32)));
        assert!(Datatype::Fp32.value(JsonNumber::Float(1e39)).is_err());
        assert_eq!(Datatype::Fp64.value(JsonNumber::Uint(3)), Ok(3.0));
        assert!(Datatype::parse("BYTES").unwrap_err().contains("FP64, FP32"));
    }

    #[test]
    fn data_is_flattened_in_row_major_order() {
        let nested: Elements = serde_json::from_str("[[1, 2.5], [-3, 4]]").unwrap();
        let flat: Elements = serde_json::from_str("[1, 2.5, -3, 4]").unwrap();
        assert_eq!(nested, flat);
        assert_eq!(flat.numbers[1], JsonNumber::Float(2.5));
        let words: Elements = serde_json::from_str(r#"[1, ["a", true]]"#).unwrap();
        assert_eq!(words.not_a_number.as_deref(), Some("\"a\""));
        assert!(serde_json::from_str::<Elements>(r#"[{"a": 1}]"#).is_err());
    }
}
