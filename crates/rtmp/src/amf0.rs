//! AMF0, the Action Message Format of RTMP commands and metadata.
//!
//! The decoder is lenient where real encoders are sloppy (each rule broke a real server):
//!
//! * an ECMA array's count is advisory (OBS writes 20 whatever it sends): entries are read up to
//!   the `00 00 09` end marker;
//! * a container missing its end marker at the end of the input ends there;
//! * an object-end marker (0x09) where a value is expected inside a container ends that container;
//! * invalid UTF-8 is decoded lossily;
//! * `avmplus-object` (0x11) switches to AMF3 for exactly one value.
//!
//! Everything else it cannot read is an [`Amf0Error`], bounded by [`Limits`]. The caller decides
//! whether that matters (a broken data message is ignored; a broken `connect` is not).

use thiserror::Error;

use crate::amf3;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const MOVIE_CLIP: u8 = 0x04;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const RECORD_SET: u8 = 0x0E;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;
const AVMPLUS_OBJECT: u8 = 0x11;

/// Key length (empty) and marker that end an object, ECMA array or typed object.
const OBJECT_END_SEQUENCE: [u8; 3] = [0x00, 0x00, OBJECT_END];
/// Longest string a UI16 length can carry.
const SHORT_STRING_MAX: usize = 0xFFFF;
/// Longest string a UI32 length can carry.
const LONG_STRING_MAX: usize = 0xFFFF_FFFF;

/// One AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An IEEE-754 double (0x00).
    Number(f64),
    /// A boolean (0x01); any non-zero byte decodes as `true`.
    Boolean(bool),
    /// A string (0x02). Encoded as a long string when longer than 0xFFFF bytes.
    String(String),
    /// An anonymous object (0x03): key/value pairs in wire order.
    Object(Vec<(String, Value)>),
    /// `null` (0x05).
    Null,
    /// `undefined` (0x06).
    Undefined,
    /// A reference (0x07) to an earlier complex value, by index; not resolved.
    Reference(u16),
    /// An ECMA (associative) array (0x08).
    EcmaArray(Vec<(String, Value)>),
    /// A strict (dense) array (0x0A).
    StrictArray(Vec<Value>),
    /// A date (0x0B): milliseconds since the Unix epoch, UTC, and a time zone that should be 0.
    Date {
        /// Milliseconds since the Unix epoch, UTC.
        millis: f64,
        /// Reserved time zone offset in minutes.
        time_zone: i16,
    },
    /// A long string (0x0C).
    LongString(String),
    /// The `unsupported` marker (0x0D).
    Unsupported,
    /// An XML document (0x0F).
    Xml(String),
    /// An object of a registered class (0x10).
    TypedObject {
        /// Class name.
        class_name: String,
        /// Key/value pairs in wire order.
        properties: Vec<(String, Value)>,
    },
    /// One AMF3 value behind the `avmplus-object` marker (0x11).
    Avmplus(amf3::Value),
}

/// Bounds on what one decode call may read and build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of containers (a scalar inside `max_depth` containers is fine).
    pub max_depth: usize,
    /// Longest string, key, class name or XML text, in bytes.
    pub max_string_length: usize,
    /// Most entries in one object, ECMA array or strict array.
    pub max_entries: usize,
    /// Most values built by one call of [`decode`] or [`decode_all`].
    pub max_values: usize,
}

impl Limits {
    /// The AMF3 limits for values behind the `avmplus-object` marker, before subtracting the
    /// depth and values already used by the enclosing AMF0 value.
    pub fn amf3(&self) -> amf3::Limits {
        amf3::Limits {
            max_depth: self.max_depth,
            max_string_length: self.max_string_length,
            max_entries: self.max_entries,
            max_values: self.max_values,
            max_references: self.max_values,
            max_decoded_bytes: self.max_string_length.saturating_mul(16),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_string_length: 1 << 20,
            max_entries: 4096,
            max_values: 65536,
        }
    }
}

/// Why AMF0 bytes could not be decoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("truncated input")]
    Truncated,
    /// A marker byte that AMF0 does not define.
    #[error("unknown marker {0:#04x}")]
    UnknownMarker(u8),
    /// MovieClip (0x04) or RecordSet (0x0E), reserved and never sent.
    #[error("reserved marker {0:#04x}")]
    ReservedMarker(u8),
    /// An object-end marker (0x09) where a top-level value was expected.
    #[error("object end outside a container")]
    UnexpectedObjectEnd,
    /// Containers nested deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// A string longer than [`Limits::max_string_length`].
    #[error("string of {length} bytes exceeds {max}")]
    StringTooLong {
        /// Length announced on the wire.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A container with more than [`Limits::max_entries`] entries.
    #[error("container with more than {0} entries")]
    TooManyEntries(usize),
    /// More than [`Limits::max_values`] values in one call.
    #[error("more than {0} values")]
    TooManyValues(usize),
    /// The AMF3 value behind an `avmplus-object` marker could not be decoded.
    #[error("bad amf3 value")]
    Amf3(#[from] amf3::Amf3Error),
}

/// Decodes one value from the front of `input` and advances it past the value.
pub fn decode(input: &mut &[u8], limits: &Limits) -> Result<Value, Amf0Error> {
    Decoder {
        limits,
        values: 0,
        amf3_bytes: 0,
    }
    .value(input, 0)
}

/// Decodes values until `input` is empty (a command or data message body).
pub fn decode_all(mut input: &[u8], limits: &Limits) -> Result<Vec<Value>, Amf0Error> {
    let mut decoder = Decoder {
        limits,
        values: 0,
        amf3_bytes: 0,
    };
    let mut values = Vec::new();
    while !input.is_empty() {
        values.push(decoder.value(&mut input, 0)?);
    }
    Ok(values)
}

/// Encodes `value` at the end of `out`.
///
/// A [`Value::String`] longer than 0xFFFF bytes is written as a long string. Keys and class
/// names longer than 0xFFFF bytes, and anything longer than 4 GiB, are cut at a character
/// boundary.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
        Value::String(s) if s.len() <= SHORT_STRING_MAX => {
            out.push(STRING);
            write_short_string(out, s);
        }
        Value::String(s) | Value::LongString(s) => {
            out.push(LONG_STRING);
            write_long_string(out, s);
        }
        Value::Object(properties) => {
            out.push(OBJECT);
            write_properties(out, properties);
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::Reference(index) => {
            out.push(REFERENCE);
            out.extend_from_slice(&index.to_be_bytes());
        }
        Value::EcmaArray(properties) => {
            out.push(ECMA_ARRAY);
            let count = u32::try_from(properties.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            write_properties(out, properties);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            let items = &items[..items.len().min(LONG_STRING_MAX)];
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            items.iter().for_each(|item| encode(item, out));
        }
        Value::Date { millis, time_zone } => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&time_zone.to_be_bytes());
        }
        Value::Unsupported => out.push(UNSUPPORTED),
        Value::Xml(s) => {
            out.push(XML_DOCUMENT);
            write_long_string(out, s);
        }
        Value::TypedObject {
            class_name,
            properties,
        } => {
            out.push(TYPED_OBJECT);
            write_short_string(out, class_name);
            write_properties(out, properties);
        }
        Value::Avmplus(value) => {
            out.push(AVMPLUS_OBJECT);
            amf3::encode(value, out);
        }
    }
}

/// Encodes `values` one after another at the end of `out`.
pub fn encode_all(values: &[Value], out: &mut Vec<u8>) {
    values.iter().for_each(|value| encode(value, out));
}

impl Value {
    /// Builds an [`Value::Object`] from key/value pairs.
    pub fn object<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| (key.into(), value))
                .collect(),
        )
    }

    /// The text of a [`Value::String`] or [`Value::LongString`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a [`Value::Number`].
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean of a [`Value::Boolean`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The key/value pairs of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(properties)
            | Value::EcmaArray(properties)
            | Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The first property named `key` of an object, ECMA array or typed object.
    pub fn property(&self, key: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// Whether this is [`Value::Null`] or [`Value::Undefined`].
    pub fn is_null_or_undefined(&self) -> bool {
        matches!(self, Value::Null | Value::Undefined)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

/// A value, or the object-end marker met where a value was expected.
enum Item {
    Value(Value),
    End,
}

struct Decoder<'l> {
    limits: &'l Limits,
    values: usize,
    /// String bytes AMF3 values have built so far: one budget for the whole call, so that
    /// many small AMF3 values full of references cannot each spend a fresh one.
    amf3_bytes: usize,
}

impl Decoder<'_> {
    /// Decodes a value enclosed in `depth` containers.
    fn value(&mut self, input: &mut &[u8], depth: usize) -> Result<Value, Amf0Error> {
        match self.item(input, depth)? {
            Item::Value(value) => Ok(value),
            Item::End => Err(Amf0Error::UnexpectedObjectEnd),
        }
    }

    fn item(&mut self, input: &mut &[u8], depth: usize) -> Result<Item, Amf0Error> {
        let marker = read_u8(input)?;
        if marker == OBJECT_END {
            return Ok(Item::End);
        }
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(Amf0Error::TooManyValues(self.limits.max_values));
        }
        let value = match marker {
            NUMBER => Value::Number(read_f64(input)?),
            BOOLEAN => Value::Boolean(read_u8(input)? != 0),
            STRING => Value::String(self.short_string(input)?),
            OBJECT => Value::Object(self.properties(input, depth)?),
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            REFERENCE => Value::Reference(u16::from_be_bytes(read_array(input)?)),
            ECMA_ARRAY => {
                // Advisory only: OBS always writes 20.
                read_array::<4>(input)?;
                Value::EcmaArray(self.properties(input, depth)?)
            }
            STRICT_ARRAY => Value::StrictArray(self.strict_array(input, depth)?),
            DATE => Value::Date {
                millis: read_f64(input)?,
                time_zone: i16::from_be_bytes(read_array(input)?),
            },
            LONG_STRING => Value::LongString(self.long_string(input)?),
            UNSUPPORTED => Value::Unsupported,
            XML_DOCUMENT => Value::Xml(self.long_string(input)?),
            TYPED_OBJECT => Value::TypedObject {
                class_name: self.short_string(input)?,
                properties: self.properties(input, depth)?,
            },
            AVMPLUS_OBJECT => Value::Avmplus(self.avmplus(input, depth)?),
            MOVIE_CLIP | RECORD_SET => return Err(Amf0Error::ReservedMarker(marker)),
            _ => return Err(Amf0Error::UnknownMarker(marker)),
        };
        Ok(Item::Value(value))
    }

    /// Reads key/value pairs up to the end marker, a stray object-end marker or the input's end.
    fn properties(
        &mut self,
        input: &mut &[u8],
        depth: usize,
    ) -> Result<Vec<(String, Value)>, Amf0Error> {
        self.enter(depth)?;
        let mut properties = Vec::new();
        loop {
            if input.is_empty() || *input == [0x00, 0x00] {
                *input = &[];
                return Ok(properties);
            }
            let key = self.short_string(input)?;
            match self.item(input, depth + 1)? {
                Item::End => return Ok(properties),
                Item::Value(_) if properties.len() >= self.limits.max_entries => {
                    return Err(Amf0Error::TooManyEntries(self.limits.max_entries));
                }
                Item::Value(value) => properties.push((key, value)),
            }
        }
    }

    fn strict_array(&mut self, input: &mut &[u8], depth: usize) -> Result<Vec<Value>, Amf0Error> {
        self.enter(depth)?;
        let count = u32::from_be_bytes(read_array(input)?) as usize;
        if count > self.limits.max_entries {
            return Err(Amf0Error::TooManyEntries(self.limits.max_entries));
        }
        let mut items = Vec::with_capacity(count.min(input.len()));
        for _ in 0..count {
            match self.item(input, depth + 1)? {
                Item::End => break,
                Item::Value(value) => items.push(value),
            }
        }
        Ok(items)
    }

    fn avmplus(&mut self, input: &mut &[u8], depth: usize) -> Result<amf3::Value, Amf0Error> {
        let mut limits = self.limits.amf3();
        limits.max_depth = limits.max_depth.saturating_sub(depth);
        limits.max_values = limits.max_values.saturating_sub(self.values);
        limits.max_decoded_bytes = limits.max_decoded_bytes.saturating_sub(self.amf3_bytes);
        let (value, values, bytes) = amf3::decode_counted(input, &limits)?;
        self.values += values;
        self.amf3_bytes += bytes;
        Ok(value)
    }

    fn short_string(&self, input: &mut &[u8]) -> Result<String, Amf0Error> {
        let length = u16::from_be_bytes(read_array(input)?);
        self.text(input, usize::from(length))
    }

    fn long_string(&self, input: &mut &[u8]) -> Result<String, Amf0Error> {
        let length = u32::from_be_bytes(read_array(input)?);
        self.text(input, length as usize)
    }

    fn text(&self, input: &mut &[u8], length: usize) -> Result<String, Amf0Error> {
        if length > self.limits.max_string_length {
            return Err(Amf0Error::StringTooLong {
                length,
                max: self.limits.max_string_length,
            });
        }
        let (bytes, rest) = input.split_at_checked(length).ok_or(Amf0Error::Truncated)?;
        *input = rest;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn enter(&self, depth: usize) -> Result<(), Amf0Error> {
        match depth < self.limits.max_depth {
            true => Ok(()),
            false => Err(Amf0Error::TooDeep(self.limits.max_depth)),
        }
    }
}

fn write_properties(out: &mut Vec<u8>, properties: &[(String, Value)]) {
    for (key, value) in properties {
        write_short_string(out, key);
        encode(value, out);
    }
    out.extend_from_slice(&OBJECT_END_SEQUENCE);
}

fn write_short_string(out: &mut Vec<u8>, s: &str) {
    let s = amf3::truncate(s, SHORT_STRING_MAX);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_long_string(out: &mut Vec<u8>, s: &str) {
    let s = amf3::truncate(s, LONG_STRING_MAX);
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn read_u8(input: &mut &[u8]) -> Result<u8, Amf0Error> {
    let [byte] = read_array(input)?;
    Ok(byte)
}

fn read_f64(input: &mut &[u8]) -> Result<f64, Amf0Error> {
    read_array(input).map(f64::from_be_bytes)
}

fn read_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], Amf0Error> {
    let (bytes, rest) = input.split_first_chunk::<N>().ok_or(Amf0Error::Truncated)?;
    *input = rest;
    Ok(*bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::amf3::tests::hex;

    /// FFmpeg's `connect` for playback (libavformat/rtmpproto.c `gen_connect`).
    const CONNECT_FFMPEG: &str = "
        02 00 07 63 6f 6e 6e 65 63 74                                  // \"connect\"
        00 3f f0 00 00 00 00 00 00                                     // 1.0
        03                                                             // {
        00 03 61 70 70 02 00 04 6c 69 76 65                            // app: live
        00 08 66 6c 61 73 68 56 65 72 02 00 0d
        4c 4e 58 20 39 2c 30 2c 31 32 34 2c 32                         // flashVer
        00 05 74 63 55 72 6c 02 00 1a 72 74 6d 70 3a 2f 2f 31 32 37
        2e 30 2e 30 2e 31 3a 31 39 33 35 2f 6c 69 76 65                // tcUrl
        00 04 66 70 61 64 01 00                                        // fpad: false
        00 0c 63 61 70 61 62 69 6c 69 74 69 65 73 00 40 2e 00 00 00 00 00 00 // capabilities
        00 0b 61 75 64 69 6f 43 6f 64 65 63 73 00 40 af ce 00 00 00 00 00    // audioCodecs
        00 0b 76 69 64 65 6f 43 6f 64 65 63 73 00 40 6f 80 00 00 00 00 00    // videoCodecs
        00 0d 76 69 64 65 6f 46 75 6e 63 74 69 6f 6e 00 3f f0 00 00 00 00 00 00
        00 00 09                                                       // }
    ";

    /// OBS's `@setDataFrame onMetaData`: 14 entries behind a hard-coded count of 20.
    const METADATA_OBS: &str = "
        02 00 0d 40 73 65 74 44 61 74 61 46 72 61 6d 65                // \"@setDataFrame\"
        02 00 0a 6f 6e 4d 65 74 61 44 61 74 61                         // \"onMetaData\"
        08 00 00 00 14                                                 // ECMA array, count 20
        00 08 64 75 72 61 74 69 6f 6e 00 00 00 00 00 00 00 00 00
        00 05 77 69 64 74 68 00 40 9e 00 00 00 00 00 00
        00 06 68 65 69 67 68 74 00 40 90 e0 00 00 00 00 00
        00 0d 76 69 64 65 6f 64 61 74 61 72 61 74 65 00 40 a3 88 00 00 00 00 00
        00 09 66 72 61 6d 65 72 61 74 65 00 40 3e 00 00 00 00 00 00
        00 0c 76 69 64 65 6f 63 6f 64 65 63 69 64 00 40 1c 00 00 00 00 00 00
        00 0d 61 75 64 69 6f 64 61 74 61 72 61 74 65 00 40 64 00 00 00 00 00 00
        00 0f 61 75 64 69 6f 73 61 6d 70 6c 65 72 61 74 65 00 40 e7 70 00 00 00 00 00
        00 0f 61 75 64 69 6f 73 61 6d 70 6c 65 73 69 7a 65 00 40 30 00 00 00 00 00 00
        00 0d 61 75 64 69 6f 63 68 61 6e 6e 65 6c 73 00 40 00 00 00 00 00 00 00
        00 06 73 74 65 72 65 6f 01 01
        00 03 32 2e 31 01 00
        00 07 65 6e 63 6f 64 65 72 02 00 29 6f 62 73 2d 6f 75 74 70 75 74 20 6d 6f 64 75
        6c 65 20 28 6c 69 62 6f 62 73 20 76 65 72 73 69 6f 6e 20 33 30 2e 30 2e 32 29
        00 08 66 69 6c 65 73 69 7a 65 00 00 00 00 00 00 00 00 00
        00 00 09
    ";

    /// Hex with `//` comments removed.
    fn golden(text: &str) -> Vec<u8> {
        let lines: Vec<&str> = text
            .lines()
            .map(|line| line.split("//").next().unwrap())
            .collect();
        hex(&lines.join(" "))
    }

    fn decode_hex(text: &str, limits: &Limits) -> Result<Vec<Value>, Amf0Error> {
        decode_all(&golden(text), limits)
    }

    fn encoded(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_all(values, &mut out);
        out
    }

    fn nested_strict_arrays(depth: usize) -> Vec<u8> {
        let mut bytes = [0x0A, 0, 0, 0, 1].repeat(depth);
        bytes.push(NULL);
        bytes
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let number = any::<f64>().prop_filter("NaN is not equal to itself", |n| !n.is_nan());
        let leaf = prop_oneof![
            number.clone().prop_map(Value::Number),
            any::<bool>().prop_map(Value::Boolean),
            ".{0,12}".prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
            any::<u16>().prop_map(Value::Reference),
            (number, any::<i16>())
                .prop_map(|(millis, time_zone)| Value::Date { millis, time_zone }),
            ".{0,12}".prop_map(Value::LongString),
            Just(Value::Unsupported),
            ".{0,12}".prop_map(Value::Xml),
            amf3::tests::arb_value().prop_map(Value::Avmplus),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let properties = prop::collection::vec(("[a-z0-9.@]{0,8}", inner.clone()), 0..6);
            prop_oneof![
                properties.clone().prop_map(Value::Object),
                properties.clone().prop_map(Value::EcmaArray),
                prop::collection::vec(inner, 0..6).prop_map(Value::StrictArray),
                ("[A-Za-z.]{0,8}", properties).prop_map(|(class_name, properties)| {
                    Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
    }

    #[test]
    fn golden_markers_both_directions() {
        let cases = [
            ("00 3f f8 00 00 00 00 00 00", Value::Number(1.5)),
            ("01 01", Value::Boolean(true)),
            ("01 00", Value::Boolean(false)),
            ("02 00 02 68 69", Value::from("hi")),
            (
                "03 00 01 61 05 00 00 09",
                Value::object([("a", Value::Null)]),
            ),
            ("05", Value::Null),
            ("06", Value::Undefined),
            ("07 00 03", Value::Reference(3)),
            (
                "08 00 00 00 01 00 01 6b 00 3f f0 00 00 00 00 00 00 00 00 09",
                Value::EcmaArray(vec![("k".into(), Value::Number(1.0))]),
            ),
            (
                "0a 00 00 00 02 05 02 00 01 78",
                Value::StrictArray(vec![Value::Null, Value::from("x")]),
            ),
            (
                "0b 3f f0 00 00 00 00 00 00 ff c4",
                Value::Date {
                    millis: 1.0,
                    time_zone: -60,
                },
            ),
            ("0c 00 00 00 03 61 62 63", Value::LongString("abc".into())),
            ("0d", Value::Unsupported),
            ("0f 00 00 00 04 3c 61 2f 3e", Value::Xml("<a/>".into())),
            (
                "10 00 01 43 00 01 78 01 01 00 00 09",
                Value::TypedObject {
                    class_name: "C".into(),
                    properties: vec![("x".into(), Value::Boolean(true))],
                },
            ),
            ("11 04 05", Value::Avmplus(amf3::Value::Integer(5))),
        ];
        for (text, value) in cases {
            let bytes = hex(text);
            let mut input = &bytes[..];
            assert_eq!(
                decode(&mut input, &Limits::default()),
                Ok(value.clone()),
                "{text}"
            );
            assert!(input.is_empty(), "{text}");
            assert_eq!(encoded(&[value]), bytes, "{text}");
        }
    }

    #[test]
    fn ffmpeg_connect() {
        let bytes = golden(CONNECT_FFMPEG);
        let values = decode_all(&bytes, &Limits::default()).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_number(), Some(1.0));
        let object = &values[2];
        assert_eq!(object.property("app").and_then(Value::as_str), Some("live"));
        let tc_url = object.property("tcUrl").and_then(Value::as_str);
        assert_eq!(tc_url, Some("rtmp://127.0.0.1:1935/live"));
        assert_eq!(
            object.property("fpad").and_then(Value::as_bool),
            Some(false)
        );
        let audio_codecs = object.property("audioCodecs").and_then(Value::as_number);
        assert_eq!(audio_codecs, Some(4071.0));
        assert_eq!(object.properties().map(<[_]>::len), Some(8));
        assert_eq!(encoded(&values), bytes);
    }

    #[test]
    fn obs_metadata_with_wrong_ecma_count() {
        let bytes = golden(METADATA_OBS);
        let values = decode_all(&bytes, &Limits::default()).unwrap();
        assert_eq!(values[0].as_str(), Some("@setDataFrame"));
        assert_eq!(values[1].as_str(), Some("onMetaData"));
        let metadata = &values[2];
        assert!(matches!(metadata, Value::EcmaArray(entries) if entries.len() == 14));
        let codec = metadata.property("videocodecid").and_then(Value::as_number);
        assert_eq!(codec, Some(7.0));
        assert_eq!(
            metadata.property("2.1").and_then(Value::as_bool),
            Some(false)
        );
        let encoder = metadata.property("encoder").and_then(Value::as_str);
        assert_eq!(encoder, Some("obs-output module (libobs version 30.0.2)"));
        // Re-encoded with the true count.
        let mut expected = bytes.clone();
        expected[33] = 14;
        assert_eq!(encoded(&values), expected);
    }

    #[test]
    fn strict_array_four_cc_list() {
        let text = "03 00 0a 66 6f 75 72 43 63 4c 69 73 74
                    0a 00 00 00 03 02 00 04 68 76 63 31 02 00 04 61 76 30 31 02 00 04 76 70 30 39
                    00 00 09";
        let values = decode_hex(text, &Limits::default()).unwrap();
        let Some(Value::StrictArray(list)) = values[0].property("fourCcList") else {
            panic!("{values:?}")
        };
        let codecs: Vec<_> = list.iter().filter_map(Value::as_str).collect();
        assert_eq!(codecs, ["hvc1", "av01", "vp09"]);
        assert_eq!(encoded(&values), hex(text));
    }

    #[test]
    fn lenient_decoding() {
        let limits = Limits::default();
        let k_null = Value::EcmaArray(vec![("k".into(), Value::Null)]);
        // Missing end marker at the end of input, with or without the empty key.
        assert_eq!(
            decode_hex("08 00 00 00 01 00 01 6b 05", &limits),
            Ok(vec![k_null.clone()])
        );
        assert_eq!(
            decode_hex("08 00 00 00 01 00 01 6b 05 00 00", &limits),
            Ok(vec![k_null])
        );
        // An object-end marker where a value is expected ends the container.
        let stray_end = decode_hex("03 00 01 61 09 02 00 01 62", &limits);
        assert_eq!(stray_end, Ok(vec![Value::Object(vec![]), Value::from("b")]));
        let short_array = decode_hex("0a 00 00 00 03 05 09 06", &limits);
        assert_eq!(
            short_array,
            Ok(vec![
                Value::StrictArray(vec![Value::Null]),
                Value::Undefined
            ])
        );
        assert_eq!(
            decode_hex("09", &limits),
            Err(Amf0Error::UnexpectedObjectEnd)
        );
        assert_eq!(
            decode_hex("02 00 02 ff 61", &limits),
            Ok(vec![Value::from("\u{fffd}a")])
        );
        // 0x11 covers exactly one value.
        let avmplus = decode_hex("11 06 07 66 6f 6f 02 00 03 62 61 72", &limits);
        let foo = Value::Avmplus(amf3::Value::String("foo".into()));
        assert_eq!(avmplus, Ok(vec![foo, Value::from("bar")]));
    }

    #[test]
    fn rejected_markers() {
        let limits = Limits::default();
        assert_eq!(
            decode_hex("12", &limits),
            Err(Amf0Error::UnknownMarker(0x12))
        );
        assert_eq!(
            decode_hex("04", &limits),
            Err(Amf0Error::ReservedMarker(0x04))
        );
        assert_eq!(
            decode_hex("0e", &limits),
            Err(Amf0Error::ReservedMarker(0x0E))
        );
        let amf3_error = amf3::Amf3Error::UnsupportedMarker(0x0D);
        assert_eq!(
            decode_hex("11 0d", &limits),
            Err(Amf0Error::Amf3(amf3_error))
        );
    }

    #[test]
    fn strings_and_numbers_are_exact() {
        let long = Value::from("x".repeat(0x1_0000));
        let bytes = encoded(std::slice::from_ref(&long));
        assert_eq!(bytes[..5], hex("0c 00 01 00 00"));
        let round_trip = decode_all(&bytes, &Limits::default()).unwrap();
        assert_eq!(round_trip, vec![Value::LongString("x".repeat(0x1_0000))]);
        assert_eq!(
            encoded(&[Value::from("x".repeat(0xFFFF))])[..3],
            hex("02 ff ff")
        );

        let nan = f64::from_bits(0x7FF8_0000_0000_0001);
        let bytes = encoded(&[Value::Number(nan), Value::Number(-0.0)]);
        assert_eq!(
            bytes,
            hex("00 7f f8 00 00 00 00 00 01 00 80 00 00 00 00 00 00 00")
        );
        let values = decode_all(&bytes, &Limits::default()).unwrap();
        let bits: Vec<_> = values
            .iter()
            .filter_map(Value::as_number)
            .map(f64::to_bits)
            .collect();
        assert_eq!(bits, [nan.to_bits(), (-0.0f64).to_bits()]);
    }

    #[test]
    fn depth_limit() {
        let limits = Limits::default();
        assert!(decode_all(&nested_strict_arrays(32), &limits).is_ok());
        assert_eq!(
            decode_all(&nested_strict_arrays(33), &limits),
            Err(Amf0Error::TooDeep(32))
        );
        // AMF3 values get what depth is left.
        let mut bytes = nested_strict_arrays(31);
        bytes.pop();
        bytes.extend_from_slice(&hex("11 09 03 01 01"));
        assert!(decode_all(&bytes, &limits).is_ok());
        bytes.splice(0..0, [0x0A, 0, 0, 0, 1]);
        let too_deep = Amf0Error::Amf3(amf3::Amf3Error::TooDeep(0));
        assert_eq!(decode_all(&bytes, &limits), Err(too_deep));
    }

    #[test]
    fn entry_value_and_string_limits() {
        let limits = Limits {
            max_entries: 2,
            max_values: 4,
            max_string_length: 2,
            ..Limits::default()
        };
        let two = "03 00 01 61 05 00 01 62 05 00 00 09";
        assert!(decode_hex(two, &limits).is_ok());
        let three = "03 00 01 61 05 00 01 62 05 00 01 63 05 00 00 09";
        assert_eq!(
            decode_hex(three, &limits),
            Err(Amf0Error::TooManyEntries(2))
        );
        let strict = "0a 00 00 00 03 05 05 05";
        assert_eq!(
            decode_hex(strict, &limits),
            Err(Amf0Error::TooManyEntries(2))
        );
        assert_eq!(
            decode_hex("05 05 05 05 05", &limits),
            Err(Amf0Error::TooManyValues(4))
        );
        let long = Err(Amf0Error::StringTooLong { length: 3, max: 2 });
        assert_eq!(decode_hex("02 00 03 61 62 63", &limits), long);
    }

    #[test]
    fn truncation_at_every_offset_never_panics() {
        for sample in [CONNECT_FFMPEG, METADATA_OBS] {
            let bytes = golden(sample);
            for end in 0..bytes.len() {
                let _ = decode_all(&bytes[..end], &Limits::default());
                let _ = decode(&mut &bytes[..end], &Limits::default());
            }
        }
        let cut = decode_all(&golden(CONNECT_FFMPEG)[..5], &Limits::default());
        assert_eq!(cut, Err(Amf0Error::Truncated));
    }

    #[test]
    fn accessors() {
        let object = Value::object([("a", Value::from(1.0)), ("b", Value::from(true))]);
        assert_eq!(object.property("b"), Some(&Value::Boolean(true)));
        assert_eq!(object.property("c"), None);
        assert_eq!(Value::LongString("s".into()).as_str(), Some("s"));
        assert_eq!(Value::Null.properties(), None);
        assert!(Value::Undefined.is_null_or_undefined());
        assert!(!Value::from(String::new()).is_null_or_undefined());
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(values in prop::collection::vec(arb_value(), 0..4)) {
            let bytes = encoded(&values);
            prop_assert_eq!(decode_all(&bytes, &Limits::default()), Ok(values));
        }
    }

    /// A small message of AMF3 values whose string references each copy a 16 KB string.
    fn avmplus_reference_bomb(values: usize, copies: u32) -> Vec<u8> {
        fn u29(out: &mut Vec<u8>, value: u32) {
            match value {
                0..=0x7F => out.push(value as u8),
                0x80..=0x3FFF => out.extend([(value >> 7) as u8 | 0x80, value as u8 & 0x7F]),
                _ => out.extend([
                    (value >> 14) as u8 | 0x80,
                    (value >> 7) as u8 | 0x80,
                    value as u8 & 0x7F,
                ]),
            }
        }
        let mut body = b"\x02\x00\x0aonMetaData\x0a".to_vec();
        body.extend_from_slice(&(values as u32).to_be_bytes());
        for _ in 0..values {
            body.extend([0x11, 0x09]);
            u29(&mut body, (copies + 1) << 1 | 1);
            body.push(0x01);
            body.push(0x06);
            u29(&mut body, 16_000 << 1 | 1);
            body.extend(std::iter::repeat_n(b'x', 16_000));
            for _ in 0..copies {
                body.extend([0x06, 0x00]);
            }
        }
        body
    }

    #[test]
    fn amf3_references_share_one_byte_budget_per_call() {
        // 16 values × 500 references × 16 KB would build 128 MB from 272 KB of input.
        let body = avmplus_reference_bomb(16, 500);
        assert!(body.len() < 300_000);
        assert!(matches!(
            decode_all(&body, &Limits::default()),
            Err(Amf0Error::Amf3(amf3::Amf3Error::TooManyBytes(_)))
        ));
        // A single value within the budget still decodes.
        assert!(decode_all(&avmplus_reference_bomb(1, 100), &Limits::default()).is_ok());
    }
}
