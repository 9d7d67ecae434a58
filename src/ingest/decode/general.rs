//! The general JSON decoder, over serde_json: it reads every shape [`super::json`] and
//! [`super::ndjson`] accept (escapes, any order of keys, any whitespace) and names the row and
//! column of the first problem. The [`super::flat`] scanner goes first; this decides whatever
//! that one leaves.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Envelope, Rows};
use crate::data::excerpt;

/// Decodes a JSON batch, an array of rows, or one row object.
pub(super) fn envelope(text: &str) -> Result<Envelope, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope = EnvelopeSeed.deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(json_error)?;
    Ok(envelope)
}

/// Decodes one NDJSON line, row number `row`, into `rows`.
pub(super) fn row(text: &str, rows: &mut Rows, row: usize, seen: &mut Vec<bool>) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    RowSeed { rows, row, seen }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(json_error)
}

fn json_error(error: serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Data => error.to_string(),
        _ => format!("not valid JSON: {error}"),
    }
}

/// The top level: an object that is a batch envelope or one row, or an array of rows.
struct EnvelopeSeed;

impl<'de> DeserializeSeed<'de> for EnvelopeSeed {
    type Value = Envelope;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"{"rows": [{"column": number, ...}, ...]}, an array of rows, or one row"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Envelope, A::Error> {
        let mut envelope = Envelope::default();
        RowsSeed(&mut envelope.rows).visit_seq(seq)?;
        Ok(envelope)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut envelope = Envelope::default();
        let mut seen = Vec::new();
        let mut single_row = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match (&*key, single_row) {
                ("rows", false) => map.next_value_seed(RowsSeed(&mut envelope.rows))?,
                ("batch_id", false) => envelope.batch_id = Some(map.next_value::<String>()?),
                ("seq", false) => envelope.seq = Some(map.next_value::<u64>()?),
                (name, _) => {
                    // Not an envelope's field: the object is one row.
                    single_row = true;
                    let value = map.next_value_seed(NumberSeed { row: 1, name })?;
                    envelope.rows.push(1, name, value, &mut seen).map_err(de::Error::custom)?;
                }
            }
        }
        if single_row {
            envelope.rows.end_row(1, &mut seen).map_err(de::Error::custom)?;
        }
        Ok(envelope)
    }
}

/// An array of row objects.
struct RowsSeed<'a>(&'a mut Rows);

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of row objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        let mut row = 0;
        loop {
            row += 1;
            let seed = RowSeed { rows: &mut *self.0, row, seen: &mut seen };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
        }
    }
}

/// One row object.
struct RowSeed<'a> {
    rows: &'a mut Rows,
    row: usize,
    seen: &'a mut Vec<bool>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "row {} as an object of column names and numbers", self.row)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value = map.next_value_seed(NumberSeed { row: self.row, name: &name })?;
            self.rows.push(self.row, &name, value, self.seen).map_err(de::Error::custom)?;
        }
        self.rows.end_row(self.row, self.seen).map_err(de::Error::custom)
    }
}

/// One value, which must be a finite number.
struct NumberSeed<'a> {
    row: usize,
    name: &'a str,
}

impl NumberSeed<'_> {
    fn refuse<E: de::Error>(&self, what: impl fmt::Display) -> E {
        E::custom(format!("row {}, column {:?}: {what} is not a number", self.row, excerpt(self.name)))
    }
}

impl<'de> DeserializeSeed<'de> for NumberSeed<'_> {
    type Value = f64;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<f64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumberSeed<'_> {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a number for row {}, column {:?}", self.row, self.name)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
        match value.is_finite() {
            true => Ok(value),
            false => Err(self.refuse(value)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
        Ok(value as f64)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
        Ok(value as f64)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<f64, E> {
        Err(self.refuse(format_args!("{:?}", excerpt(value))))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<f64, E> {
        Err(self.refuse(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Err(self.refuse("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<f64, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Err(self.refuse("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<f64, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Err(self.refuse("an object"))
    }
}
