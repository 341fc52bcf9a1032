//! AMF3, the Action Message Format of ActionScript 3.
//!
//! In RTMP an AMF3 value only appears behind the AMF0 `avmplus-object` marker (0x11) and the
//! switch lasts for exactly one value. A decode call has its own string, object and traits
//! reference tables; references are resolved into owned copies, so every copy is charged to
//! the [`Limits`] budget before it is made. Cyclic references are rejected because a tree of
//! owned values cannot hold them.
//!
//! The encoder writes every value inline (it never emits references), which every AMF3 reader
//! accepts.

use std::rc::Rc;

use thiserror::Error;

const UNDEFINED: u8 = 0x00;
const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const INTEGER: u8 = 0x04;
const DOUBLE: u8 = 0x05;
const STRING: u8 = 0x06;
const XML_DOCUMENT: u8 = 0x07;
const DATE: u8 = 0x08;
const ARRAY: u8 = 0x09;
const OBJECT: u8 = 0x0A;
const XML: u8 = 0x0B;
const BYTE_ARRAY: u8 = 0x0C;
const VECTOR_INT: u8 = 0x0D;
const DICTIONARY: u8 = 0x11;

/// Largest value a U29 can carry.
const U29_MAX: u32 = 0x1FFF_FFFF;
/// Largest inline length or count in a U29 whose low bit is a flag.
const U29_LENGTH_MAX: usize = 0x0FFF_FFFF;
/// Largest sealed member count in an inline traits header.
const SEALED_COUNT_MAX: usize = 0x01FF_FFFF;
/// Range of [`Value::Integer`] on the wire (29-bit two's complement).
const INTEGER_MIN: i32 = -0x1000_0000;
const INTEGER_MAX: i32 = 0x0FFF_FFFF;
/// U29 header of the empty string, which also ends dynamic members and associative arrays.
const EMPTY_STRING: u8 = 0x01;

/// One AMF3 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `undefined` (0x00).
    Undefined,
    /// `null` (0x01).
    Null,
    /// `false` (0x02) or `true` (0x03).
    Boolean(bool),
    /// A 29-bit signed integer (0x04). Values outside -2^28..2^28 are encoded as a double.
    Integer(i32),
    /// An IEEE-754 double (0x05).
    Double(f64),
    /// A UTF-8 string (0x06); invalid UTF-8 is decoded lossily.
    String(String),
    /// A legacy `flash.xml.XMLDocument` (0x07).
    XmlDocument(String),
    /// A date in milliseconds since the Unix epoch, UTC (0x08).
    Date(f64),
    /// An array (0x09): associative part (non-empty keys) then dense part.
    Array {
        /// Key/value pairs, in wire order.
        associative: Vec<(String, Value)>,
        /// Values indexed from 0.
        dense: Vec<Value>,
    },
    /// An object (0x0A) with its sealed members (from its traits) and dynamic members.
    Object {
        /// Class name; empty for an anonymous object.
        class_name: String,
        /// Members named by the traits, in traits order.
        sealed: Vec<(String, Value)>,
        /// Members added at run time (non-empty keys).
        dynamic: Vec<(String, Value)>,
    },
    /// An E4X `XML` value (0x0B).
    Xml(String),
    /// A `flash.utils.ByteArray` (0x0C).
    ByteArray(Vec<u8>),
}

/// Bounds on what one decode call may read and build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays and objects (a scalar inside `max_depth` containers is fine).
    pub max_depth: usize,
    /// Longest string, XML text or byte array, in bytes.
    pub max_string_length: usize,
    /// Most members of one container (dense items, associative pairs, sealed or dynamic members).
    pub max_entries: usize,
    /// Most values built by one decode call, counting every copy a reference makes.
    pub max_values: usize,
    /// Most entries in each of the string, object and traits reference tables.
    pub max_references: usize,
    /// Most string and byte-array bytes built by one decode call, counting reference copies.
    pub max_decoded_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_string_length: 1 << 20,
            max_entries: 4096,
            max_values: 65536,
            max_references: 65536,
            max_decoded_bytes: 16 << 20,
        }
    }
}

/// Why AMF3 bytes could not be decoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Amf3Error {
    /// The input ended inside a value.
    #[error("truncated input")]
    Truncated,
    /// A marker byte that AMF3 does not define.
    #[error("unknown marker {0:#04x}")]
    UnknownMarker(u8),
    /// A vector (0x0D..=0x10) or dictionary (0x11) marker, which weir does not decode.
    #[error("unsupported marker {0:#04x}")]
    UnsupportedMarker(u8),
    /// An object whose traits are externalizable: its body format is private to its class.
    #[error("externalizable class {0:?} unsupported")]
    Externalizable(String),
    /// A string reference past the end of the string table.
    #[error("string reference {0} out of range")]
    StringReference(usize),
    /// An object reference past the end of the object table.
    #[error("object reference {0} out of range")]
    ObjectReference(usize),
    /// A traits reference past the end of the traits table.
    #[error("traits reference {0} out of range")]
    TraitsReference(usize),
    /// A reference to an object that is still being decoded (a cycle).
    #[error("cyclic reference {0}")]
    CyclicReference(usize),
    /// Containers nested deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// A string, XML text or byte array longer than [`Limits::max_string_length`].
    #[error("string of {length} bytes exceeds {max}")]
    StringTooLong {
        /// Length announced on the wire.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A container with more than [`Limits::max_entries`] members.
    #[error("container with more than {0} entries")]
    TooManyEntries(usize),
    /// More than [`Limits::max_values`] values built.
    #[error("more than {0} values")]
    TooManyValues(usize),
    /// A reference table grew past [`Limits::max_references`].
    #[error("more than {0} references")]
    TooManyReferences(usize),
    /// More than [`Limits::max_decoded_bytes`] string bytes built.
    #[error("more than {0} decoded bytes")]
    TooManyBytes(usize),
}

/// Decodes one AMF3 value from the front of `input` and advances it past the value.
pub fn decode(input: &mut &[u8], limits: &Limits) -> Result<Value, Amf3Error> {
    decode_counted(input, limits).map(|(value, _, _)| value)
}

/// Encodes `value` at the end of `out`, inline (without references).
///
/// Lengths past what a U29 can carry (256 MiB) are cut, strings at a character boundary;
/// members with an empty key in `dynamic` or `associative` are skipped because the empty
/// key ends those lists on the wire.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Undefined => out.push(UNDEFINED),
        Value::Null => out.push(NULL),
        Value::Boolean(false) => out.push(FALSE),
        Value::Boolean(true) => out.push(TRUE),
        Value::Integer(n) if (INTEGER_MIN..=INTEGER_MAX).contains(n) => {
            out.push(INTEGER);
            write_u29(out, *n as u32 & U29_MAX);
        }
        Value::Integer(n) => {
            out.push(DOUBLE);
            out.extend_from_slice(&f64::from(*n).to_be_bytes());
        }
        Value::Double(n) => {
            out.push(DOUBLE);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::String(s) => {
            out.push(STRING);
            write_string(out, s);
        }
        Value::XmlDocument(s) => {
            out.push(XML_DOCUMENT);
            write_string(out, s);
        }
        Value::Date(millis) => {
            out.push(DATE);
            out.push(0x01);
            out.extend_from_slice(&millis.to_be_bytes());
        }
        Value::Array { associative, dense } => {
            out.push(ARRAY);
            let dense = &dense[..dense.len().min(U29_LENGTH_MAX)];
            write_u29(out, (dense.len() as u32) << 1 | 1);
            write_members(out, associative);
            out.push(EMPTY_STRING);
            dense.iter().for_each(|item| encode(item, out));
        }
        Value::Object {
            class_name,
            sealed,
            dynamic,
        } => {
            out.push(OBJECT);
            let sealed = &sealed[..sealed.len().min(SEALED_COUNT_MAX)];
            let is_dynamic = !dynamic.is_empty() || class_name.is_empty();
            let flags = 0b0011 | u32::from(is_dynamic) << 3;
            write_u29(out, (sealed.len() as u32) << 4 | flags);
            write_string(out, class_name);
            sealed.iter().for_each(|(name, _)| write_string(out, name));
            sealed.iter().for_each(|(_, item)| encode(item, out));
            if is_dynamic {
                write_members(out, dynamic);
                out.push(EMPTY_STRING);
            }
        }
        Value::Xml(s) => {
            out.push(XML);
            write_string(out, s);
        }
        Value::ByteArray(bytes) => {
            out.push(BYTE_ARRAY);
            let bytes = &bytes[..bytes.len().min(U29_LENGTH_MAX)];
            write_u29(out, (bytes.len() as u32) << 1 | 1);
            out.extend_from_slice(bytes);
        }
    }
}

/// Decodes one value and also returns how many values it built, for the AMF0 budget.
pub(crate) fn decode_counted(
    input: &mut &[u8],
    limits: &Limits,
) -> Result<(Value, usize, usize), Amf3Error> {
    let mut decoder = Decoder {
        limits,
        strings: Vec::new(),
        objects: Vec::new(),
        traits: Vec::new(),
        values: 0,
        bytes: 0,
    };
    let value = decoder.value(input, 0)?;
    Ok((value, decoder.values, decoder.bytes))
}

/// Class name, sealed member names and dynamic flag shared by objects of one class.
struct Traits {
    class_name: String,
    sealed: Vec<String>,
    dynamic: bool,
}

/// A completed entry of the object table, with what a copy of it costs.
struct Stored {
    value: Value,
    cost: Cost,
}

/// Size of a value tree: nodes, string bytes, and nesting height (0 for a scalar).
#[derive(Clone, Copy)]
struct Cost {
    nodes: usize,
    bytes: usize,
    height: usize,
}

impl Cost {
    fn leaf(bytes: usize) -> Self {
        let (nodes, height) = (1, 0);
        Self {
            nodes,
            bytes,
            height,
        }
    }
}

struct Decoder<'l> {
    limits: &'l Limits,
    strings: Vec<String>,
    /// `None` while the object is being decoded.
    objects: Vec<Option<Stored>>,
    traits: Vec<Rc<Traits>>,
    values: usize,
    bytes: usize,
}

impl Decoder<'_> {
    /// Decodes a value enclosed in `depth` containers.
    fn value(&mut self, input: &mut &[u8], depth: usize) -> Result<Value, Amf3Error> {
        self.charge(1, 0)?;
        let marker = read_u8(input)?;
        match marker {
            UNDEFINED => Ok(Value::Undefined),
            NULL => Ok(Value::Null),
            FALSE => Ok(Value::Boolean(false)),
            TRUE => Ok(Value::Boolean(true)),
            INTEGER => Ok(Value::Integer(integer_from_u29(read_u29(input)?))),
            DOUBLE => Ok(Value::Double(read_f64(input)?)),
            STRING => Ok(Value::String(self.string(input)?)),
            XML_DOCUMENT | DATE | ARRAY | OBJECT | XML | BYTE_ARRAY => {
                self.complex(marker, input, depth)
            }
            VECTOR_INT..=DICTIONARY => Err(Amf3Error::UnsupportedMarker(marker)),
            _ => Err(Amf3Error::UnknownMarker(marker)),
        }
    }

    /// Decodes a value that lives in the object reference table.
    fn complex(&mut self, marker: u8, input: &mut &[u8], depth: usize) -> Result<Value, Amf3Error> {
        let header = read_u29(input)?;
        if header & 1 == 0 {
            return self.object_reference((header >> 1) as usize, depth);
        }
        let header = header >> 1;
        let index = self.objects.len();
        if index >= self.limits.max_references {
            return Err(Amf3Error::TooManyReferences(self.limits.max_references));
        }
        self.objects.push(None);
        let value = match marker {
            XML_DOCUMENT => Value::XmlDocument(self.text(input, header as usize)?),
            DATE => Value::Date(read_f64(input)?),
            ARRAY => self.array(input, header as usize, depth)?,
            OBJECT => self.object(input, header, depth)?,
            XML => Value::Xml(self.text(input, header as usize)?),
            _ => Value::ByteArray(self.bytes(input, header as usize)?.to_vec()),
        };
        let cost = measure(&value);
        self.charge(cost.nodes, cost.bytes)?;
        if let Some(slot) = self.objects.get_mut(index) {
            *slot = Some(Stored {
                value: value.clone(),
                cost,
            });
        }
        Ok(value)
    }

    fn object_reference(&mut self, index: usize, depth: usize) -> Result<Value, Amf3Error> {
        let stored = match self.objects.get(index) {
            None => return Err(Amf3Error::ObjectReference(index)),
            Some(None) => return Err(Amf3Error::CyclicReference(index)),
            Some(Some(stored)) => stored,
        };
        let cost = stored.cost;
        if depth + cost.height > self.limits.max_depth {
            return Err(Amf3Error::TooDeep(self.limits.max_depth));
        }
        self.charge(cost.nodes, cost.bytes)?;
        match self.objects.get(index) {
            Some(Some(stored)) => Ok(stored.value.clone()),
            _ => Err(Amf3Error::ObjectReference(index)),
        }
    }

    fn array(&mut self, input: &mut &[u8], count: usize, depth: usize) -> Result<Value, Amf3Error> {
        self.enter(depth)?;
        if count > self.limits.max_entries {
            return Err(Amf3Error::TooManyEntries(self.limits.max_entries));
        }
        let associative = self.members(input, depth)?;
        let mut dense = Vec::with_capacity(count.min(input.len()));
        for _ in 0..count {
            dense.push(self.value(input, depth + 1)?);
        }
        Ok(Value::Array { associative, dense })
    }

    fn object(&mut self, input: &mut &[u8], header: u32, depth: usize) -> Result<Value, Amf3Error> {
        self.enter(depth)?;
        let traits = self.traits(input, header)?;
        self.charge(0, traits.class_name.len())?;
        let class_name = traits.class_name.clone();
        let mut sealed = Vec::with_capacity(traits.sealed.len().min(input.len()));
        for name in &traits.sealed {
            self.charge(0, name.len())?;
            sealed.push((name.clone(), self.value(input, depth + 1)?));
        }
        let dynamic = if traits.dynamic {
            self.members(input, depth)?
        } else {
            Vec::new()
        };
        Ok(Value::Object {
            class_name,
            sealed,
            dynamic,
        })
    }

    /// Reads inline traits or a traits reference; `header` is the U29O without its low bit.
    fn traits(&mut self, input: &mut &[u8], header: u32) -> Result<Rc<Traits>, Amf3Error> {
        if header & 1 == 0 {
            let index = (header >> 1) as usize;
            return self
                .traits
                .get(index)
                .cloned()
                .ok_or(Amf3Error::TraitsReference(index));
        }
        if header & 0b10 != 0 {
            return Err(Amf3Error::Externalizable(self.string(input)?));
        }
        let dynamic = header & 0b100 != 0;
        let count = (header >> 3) as usize;
        if count > self.limits.max_entries {
            return Err(Amf3Error::TooManyEntries(self.limits.max_entries));
        }
        let class_name = self.string(input)?;
        let mut sealed = Vec::with_capacity(count.min(input.len()));
        for _ in 0..count {
            sealed.push(self.string(input)?);
        }
        if self.traits.len() >= self.limits.max_references {
            return Err(Amf3Error::TooManyReferences(self.limits.max_references));
        }
        let traits = Rc::new(Traits {
            class_name,
            sealed,
            dynamic,
        });
        self.traits.push(Rc::clone(&traits));
        Ok(traits)
    }

    /// Reads key/value pairs up to the empty key.
    fn members(
        &mut self,
        input: &mut &[u8],
        depth: usize,
    ) -> Result<Vec<(String, Value)>, Amf3Error> {
        let mut members = Vec::new();
        loop {
            let key = self.string(input)?;
            if key.is_empty() {
                return Ok(members);
            }
            if members.len() >= self.limits.max_entries {
                return Err(Amf3Error::TooManyEntries(self.limits.max_entries));
            }
            let value = self.value(input, depth + 1)?;
            members.push((key, value));
        }
    }

    /// Reads a string or string reference (U29S).
    fn string(&mut self, input: &mut &[u8]) -> Result<String, Amf3Error> {
        let header = read_u29(input)?;
        if header & 1 == 0 {
            let index = (header >> 1) as usize;
            let length = self
                .strings
                .get(index)
                .ok_or(Amf3Error::StringReference(index))?
                .len();
            self.charge(0, length)?;
            return self
                .strings
                .get(index)
                .cloned()
                .ok_or(Amf3Error::StringReference(index));
        }
        let text = self.text(input, (header >> 1) as usize)?;
        if !text.is_empty() {
            if self.strings.len() >= self.limits.max_references {
                return Err(Amf3Error::TooManyReferences(self.limits.max_references));
            }
            self.charge(0, text.len())?;
            self.strings.push(text.clone());
        }
        Ok(text)
    }

    fn text(&mut self, input: &mut &[u8], length: usize) -> Result<String, Amf3Error> {
        let bytes = self.bytes(input, length)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn bytes<'a>(&mut self, input: &mut &'a [u8], length: usize) -> Result<&'a [u8], Amf3Error> {
        if length > self.limits.max_string_length {
            return Err(Amf3Error::StringTooLong {
                length,
                max: self.limits.max_string_length,
            });
        }
        let bytes = take(input, length)?;
        self.charge(0, length)?;
        Ok(bytes)
    }

    fn enter(&self, depth: usize) -> Result<(), Amf3Error> {
        match depth < self.limits.max_depth {
            true => Ok(()),
            false => Err(Amf3Error::TooDeep(self.limits.max_depth)),
        }
    }

    fn charge(&mut self, values: usize, bytes: usize) -> Result<(), Amf3Error> {
        self.values = self.values.saturating_add(values);
        if self.values > self.limits.max_values {
            return Err(Amf3Error::TooManyValues(self.limits.max_values));
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_decoded_bytes {
            return Err(Amf3Error::TooManyBytes(self.limits.max_decoded_bytes));
        }
        Ok(())
    }
}

fn measure(value: &Value) -> Cost {
    let (mut cost, members, dense) = match value {
        Value::String(s) | Value::XmlDocument(s) | Value::Xml(s) => return Cost::leaf(s.len()),
        Value::ByteArray(bytes) => return Cost::leaf(bytes.len()),
        Value::Array { associative, dense } => {
            (Cost::leaf(0), associative.iter().chain(&[]), dense)
        }
        Value::Object {
            class_name,
            sealed,
            dynamic,
        } => (
            Cost::leaf(class_name.len()),
            sealed.iter().chain(dynamic),
            &Vec::new(),
        ),
        _ => return Cost::leaf(0),
    };
    let items = members.map(|(key, item)| (key.len(), item));
    for (key_bytes, item) in items.chain(dense.iter().map(|item| (0, item))) {
        let inner = measure(item);
        cost.nodes = cost.nodes.saturating_add(inner.nodes);
        cost.bytes = cost
            .bytes
            .saturating_add(inner.bytes)
            .saturating_add(key_bytes);
        cost.height = cost.height.max(inner.height + 1);
    }
    cost.height = cost.height.max(1);
    cost
}

fn write_members(out: &mut Vec<u8>, members: &[(String, Value)]) {
    for (key, item) in members.iter().filter(|(key, _)| !key.is_empty()) {
        write_string(out, key);
        encode(item, out);
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    let s = truncate(s, U29_LENGTH_MAX);
    write_u29(out, (s.len() as u32) << 1 | 1);
    out.extend_from_slice(s.as_bytes());
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn write_u29(out: &mut Vec<u8>, value: u32) {
    let value = value & U29_MAX;
    match value {
        0..=0x7F => out.push(value as u8),
        0x80..=0x3FFF => out.extend_from_slice(&[(value >> 7) as u8 | 0x80, value as u8 & 0x7F]),
        0x4000..=0x1F_FFFF => out.extend_from_slice(&[
            (value >> 14) as u8 | 0x80,
            (value >> 7) as u8 | 0x80,
            value as u8 & 0x7F,
        ]),
        _ => out.extend_from_slice(&[
            (value >> 22) as u8 | 0x80,
            (value >> 15) as u8 | 0x80,
            (value >> 8) as u8 | 0x80,
            value as u8,
        ]),
    }
}

fn read_u29(input: &mut &[u8]) -> Result<u32, Amf3Error> {
    let mut value = 0u32;
    for _ in 0..3 {
        let byte = read_u8(input)?;
        value = value << 7 | u32::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Ok(value << 8 | u32::from(read_u8(input)?))
}

fn integer_from_u29(value: u32) -> i32 {
    // Sign-extend bit 28.
    ((value << 3) as i32) >> 3
}

fn read_u8(input: &mut &[u8]) -> Result<u8, Amf3Error> {
    let (&byte, rest) = input.split_first().ok_or(Amf3Error::Truncated)?;
    *input = rest;
    Ok(byte)
}

fn read_f64(input: &mut &[u8]) -> Result<f64, Amf3Error> {
    let (bytes, rest) = input.split_first_chunk::<8>().ok_or(Amf3Error::Truncated)?;
    *input = rest;
    Ok(f64::from_be_bytes(*bytes))
}

fn take<'a>(input: &mut &'a [u8], length: usize) -> Result<&'a [u8], Amf3Error> {
    let (bytes, rest) = input.split_at_checked(length).ok_or(Amf3Error::Truncated)?;
    *input = rest;
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Bytes from hex digits; anything else (spaces, newlines) is ignored.
    pub(crate) fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        let pairs = digits
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap());
        pairs
            .map(|pair| u8::from_str_radix(pair, 16).unwrap())
            .collect()
    }

    /// AMF3 values that survive an encode/decode round trip unchanged.
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let number = any::<f64>().prop_filter("NaN is not equal to itself", |n| !n.is_nan());
        let leaf = prop_oneof![
            Just(Value::Undefined),
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            (INTEGER_MIN..=INTEGER_MAX).prop_map(Value::Integer),
            number.clone().prop_map(Value::Double),
            ".{0,12}".prop_map(Value::String),
            ".{0,12}".prop_map(Value::XmlDocument),
            number.prop_map(Value::Date),
            ".{0,12}".prop_map(Value::Xml),
            prop::collection::vec(any::<u8>(), 0..16).prop_map(Value::ByteArray),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let members = prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6);
            let sealed = prop::collection::vec(("[a-z]{0,6}", inner.clone()), 0..6);
            prop_oneof![
                (members.clone(), prop::collection::vec(inner, 0..6))
                    .prop_map(|(associative, dense)| array(associative, dense)),
                ("[A-Za-z.]{0,8}", sealed, members)
                    .prop_map(|(class_name, sealed, dynamic)| object(&class_name, sealed, dynamic)),
            ]
        })
    }

    fn array(associative: Vec<(String, Value)>, dense: Vec<Value>) -> Value {
        Value::Array { associative, dense }
    }

    fn object(class: &str, sealed: Vec<(String, Value)>, dynamic: Vec<(String, Value)>) -> Value {
        let class_name = class.to_owned();
        Value::Object {
            class_name,
            sealed,
            dynamic,
        }
    }

    fn member(key: &str, value: Value) -> (String, Value) {
        (key.to_owned(), value)
    }

    fn string(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    fn decode_hex(text: &str) -> Result<Value, Amf3Error> {
        decode_with(text, &Limits::default())
    }

    fn decode_with(text: &str, limits: &Limits) -> Result<Value, Amf3Error> {
        let bytes = hex(text);
        let mut input = &bytes[..];
        let value = decode(&mut input, limits)?;
        assert!(input.is_empty(), "{} bytes left", input.len());
        Ok(value)
    }

    fn encoded(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out);
        out
    }

    #[test]
    fn golden_markers_both_directions() {
        let cases = [
            ("00", Value::Undefined),
            ("01", Value::Null),
            ("02", Value::Boolean(false)),
            ("03", Value::Boolean(true)),
            ("04 05", Value::Integer(5)),
            ("05 3f f8 00 00 00 00 00 00", Value::Double(1.5)),
            ("06 07 66 6f 6f", string("foo")),
            ("06 01", string("")),
            ("07 09 3c 61 2f 3e", Value::XmlDocument("<a/>".into())),
            ("08 01 3f f0 00 00 00 00 00 00", Value::Date(1.0)),
            (
                "09 05 03 6b 04 01 01 04 02 06 01",
                array(
                    vec![member("k", Value::Integer(1))],
                    vec![Value::Integer(2), string("")],
                ),
            ),
            (
                "0a 0b 01 03 61 04 01 01",
                object("", vec![], vec![member("a", Value::Integer(1))]),
            ),
            (
                "0a 13 03 50 03 78 04 01",
                object("P", vec![member("x", Value::Integer(1))], vec![]),
            ),
            ("0b 09 3c 61 2f 3e", Value::Xml("<a/>".into())),
            ("0c 07 01 02 03", Value::ByteArray(vec![1, 2, 3])),
        ];
        for (text, value) in cases {
            assert_eq!(decode_hex(text), Ok(value.clone()), "decode {text}");
            assert_eq!(encoded(&value), hex(text), "encode {value:?}");
        }
    }

    #[test]
    fn u29_edges() {
        let cases = [
            ("04 00", 0),
            ("04 7f", 0x7F),
            ("04 81 00", 0x80),
            ("04 ff 7f", 0x3FFF),
            ("04 81 80 00", 0x4000),
            ("04 ff ff 7f", 0x1F_FFFF),
            ("04 80 c0 80 00", 0x20_0000),
            ("04 bf ff ff ff", 0x0FFF_FFFF),
            ("04 ff ff ff ff", -1),
            ("04 ff ff ff fe", -2),
            ("04 c0 80 80 00", -0x1000_0000),
        ];
        for (text, n) in cases {
            assert_eq!(decode_hex(text), Ok(Value::Integer(n)), "decode {text}");
            assert_eq!(encoded(&Value::Integer(n)), hex(text), "encode {n}");
        }
        // Non-canonical (overlong) U29 forms decode too.
        assert_eq!(decode_hex("04 80 00"), Ok(Value::Integer(0)));
    }

    #[test]
    fn integer_outside_29_bits_encodes_as_double() {
        let bytes = encoded(&Value::Integer(0x1000_0000));
        assert_eq!(bytes, hex("05 41 b0 00 00 00 00 00 00"));
        assert_eq!(
            decode_hex("05 41 b0 00 00 00 00 00 00"),
            Ok(Value::Double(268435456.0))
        );
    }

    #[test]
    fn string_references() {
        let expected = array(vec![], vec![string("foo"), string("foo")]);
        assert_eq!(decode_hex("09 05 01 06 07 66 6f 6f 06 00"), Ok(expected));
        // A key fills the same table as values; the empty string never enters it.
        let expected = object("", vec![], vec![member("foo", string("foo"))]);
        assert_eq!(decode_hex("0a 0b 01 07 66 6f 6f 06 00 01"), Ok(expected));
        assert_eq!(
            decode_hex("09 05 01 06 01 06 00"),
            Err(Amf3Error::StringReference(0))
        );
    }

    #[test]
    fn object_references() {
        let inner = array(vec![], vec![Value::Integer(1)]);
        let expected = array(vec![], vec![inner.clone(), inner]);
        assert_eq!(decode_hex("09 05 01 09 03 01 04 01 09 02"), Ok(expected));
        assert_eq!(decode_hex("09 02"), Err(Amf3Error::ObjectReference(1)));
        assert_eq!(
            decode_hex("09 03 01 09 00"),
            Err(Amf3Error::CyclicReference(0))
        );
    }

    #[test]
    fn traits_references() {
        let point = |x| object("P", vec![member("x", Value::Integer(x))], vec![]);
        let expected = array(vec![], vec![point(1), point(2)]);
        let text = "09 05 01 0a 13 03 50 03 78 04 01 0a 01 04 02";
        assert_eq!(decode_hex(text), Ok(expected));
        assert_eq!(decode_hex("0a 05"), Err(Amf3Error::TraitsReference(1)));
    }

    #[test]
    fn rejected_markers() {
        assert_eq!(
            decode_hex("0a 07 03 41"),
            Err(Amf3Error::Externalizable("A".into()))
        );
        assert_eq!(decode_hex("0d"), Err(Amf3Error::UnsupportedMarker(0x0D)));
        assert_eq!(decode_hex("11"), Err(Amf3Error::UnsupportedMarker(0x11)));
        assert_eq!(decode_hex("12"), Err(Amf3Error::UnknownMarker(0x12)));
    }

    #[test]
    fn depth_limit_counts_referenced_values() {
        let limits = |max_depth| Limits {
            max_depth,
            ..Limits::default()
        };
        // [[1], [ref to [1]]]: the copy sits three containers deep.
        let text = "09 05 01 09 03 01 04 01 09 03 01 09 02";
        assert_eq!(decode_with(text, &limits(2)), Err(Amf3Error::TooDeep(2)));
        assert!(decode_with(text, &limits(3)).is_ok());
        assert_eq!(
            decode_with("09 03 01 09 01 01", &limits(1)),
            Err(Amf3Error::TooDeep(1))
        );
    }

    #[test]
    fn reference_amplification_is_bounded() {
        // Array i holds two references to array i - 1: 2^40 values if copied blindly.
        let mut bytes = hex("09 51 01 09 01 01");
        for index in 1..40u8 {
            bytes.extend_from_slice(&[0x09, 0x05, 0x01, 0x09, index << 1, 0x09, index << 1]);
        }
        let error = decode(&mut &bytes[..], &Limits::default());
        assert_eq!(error, Err(Amf3Error::TooManyValues(65536)));
        // One 1000-byte string, then 199 references to it.
        let limits = Limits {
            max_decoded_bytes: 100_000,
            ..Limits::default()
        };
        let mut bytes = hex("09 83 11 01 06 8f 51");
        bytes.extend_from_slice(&[b'x'; 1000]);
        bytes.extend([0x06, 0x00].repeat(199));
        let error = decode(&mut &bytes[..], &limits);
        assert_eq!(error, Err(Amf3Error::TooManyBytes(100_000)));
    }

    #[test]
    fn table_entry_and_string_limits() {
        let one_entry = Limits {
            max_entries: 1,
            ..Limits::default()
        };
        let two_strings = "09 05 01 06 03 61 06 03 62";
        assert_eq!(
            decode_with(two_strings, &one_entry),
            Err(Amf3Error::TooManyEntries(1))
        );
        let keys = "0a 0b 01 03 61 01 03 62 01 01";
        assert_eq!(
            decode_with(keys, &one_entry),
            Err(Amf3Error::TooManyEntries(1))
        );
        let one_reference = Limits {
            max_references: 1,
            ..Limits::default()
        };
        let error = decode_with(two_strings, &one_reference);
        assert_eq!(error, Err(Amf3Error::TooManyReferences(1)));
        let short = Limits {
            max_string_length: 2,
            ..Limits::default()
        };
        let error = decode_with("06 07 61 62 63", &short);
        assert_eq!(error, Err(Amf3Error::StringTooLong { length: 3, max: 2 }));
        assert_eq!(decode_hex("06 05 ff 61"), Ok(string("\u{fffd}a")));
    }

    #[test]
    fn truncation_at_every_offset() {
        let bytes = hex(
            "09 09 03 6b 04 01 01 0a 13 03 50 03 78 05 3f f8 00 00 00 00 00 00
             0a 01 06 00 09 02 0c 05 01 02",
        );
        assert!(decode(&mut &bytes[..], &Limits::default()).is_ok());
        for end in 0..bytes.len() {
            let result = decode(&mut &bytes[..end], &Limits::default());
            assert_eq!(result, Err(Amf3Error::Truncated), "cut at {end}");
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(value in arb_value()) {
            let bytes = encoded(&value);
            let mut input = &bytes[..];
            prop_assert_eq!(decode(&mut input, &Limits::default()), Ok(value));
            prop_assert!(input.is_empty());
        }
    }
}
