//! NetConnection and NetStream commands (spec section 7.2): the AMF shape of a command, and the
//! replies and status notifications a server or client sends.

use bytes::Bytes;

use crate::amf0::{self, Value};

/// An AMF command: `[name, transaction id, command object, arguments...]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// Procedure name, e.g. `connect`, `publish`, `_result`, `onStatus`.
    pub name: String,
    /// Transaction id; 0 means "no reply expected".
    pub transaction_id: f64,
    /// The command object (an Object for `connect`, usually Null otherwise).
    pub object: Value,
    /// Remaining arguments.
    pub arguments: Vec<Value>,
}

/// Why a command body could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The AMF0 decoder failed.
    #[error("command is not valid amf0: {0}")]
    Amf(#[from] amf0::Amf0Error),
    /// The body holds no values.
    #[error("command is empty")]
    Empty,
    /// The first value is not a string.
    #[error("command name is not a string")]
    NameNotString,
}

impl Command {
    /// Builds a command.
    pub fn new(name: &str, transaction_id: f64, object: Value, arguments: Vec<Value>) -> Self {
        Self {
            name: name.to_owned(),
            transaction_id,
            object,
            arguments,
        }
    }

    /// Decodes a command body (AMF0; for AMF3 command messages the format byte is already
    /// stripped). A missing transaction id or command object reads as 0 and Null: some clients
    /// send `onStatus`-like commands that short.
    pub fn decode(body: &[u8], limits: &amf0::Limits) -> Result<Self, CommandError> {
        let mut values = amf0::decode_all(body, limits)?.into_iter();
        let name = match values.next() {
            None => return Err(CommandError::Empty),
            Some(value) => value
                .as_str()
                .map(str::to_owned)
                .ok_or(CommandError::NameNotString)?,
        };
        let transaction_id = values.next().and_then(|v| v.as_number()).unwrap_or(0.0);
        let object = values.next().unwrap_or(Value::Null);
        Ok(Self {
            name,
            transaction_id,
            object,
            arguments: values.collect(),
        })
    }

    /// Encodes the command as an AMF0 body.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(128);
        amf0::encode(&Value::String(self.name.clone()), &mut out);
        amf0::encode(&Value::Number(self.transaction_id), &mut out);
        amf0::encode(&self.object, &mut out);
        amf0::encode_all(&self.arguments, &mut out);
        Bytes::from(out)
    }

    /// The argument at `index` as a string, if it is one.
    pub fn string_argument(&self, index: usize) -> Option<&str> {
        self.arguments.get(index).and_then(Value::as_str)
    }

    /// The argument at `index` as a number, if it is one.
    pub fn number_argument(&self, index: usize) -> Option<f64> {
        self.arguments.get(index).and_then(Value::as_number)
    }

    /// The argument at `index` as a boolean, if it is one.
    pub fn bool_argument(&self, index: usize) -> Option<bool> {
        self.arguments.get(index).and_then(Value::as_bool)
    }
}

/// Level of an `onStatus` info object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusLevel {
    /// Normal progress.
    Status,
    /// Something worth knowing that is not fatal.
    Warning,
    /// A failure; FFmpeg treats every error-level status as fatal.
    Error,
}

impl StatusLevel {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }

    /// Parses the wire string; anything unknown reads as `Status`.
    pub fn parse(text: &str) -> Self {
        match text {
            "error" => Self::Error,
            "warning" => Self::Warning,
            _ => Self::Status,
        }
    }
}

/// Well-known status codes.
pub mod code {
    /// connect accepted.
    pub const CONNECT_SUCCESS: &str = "NetConnection.Connect.Success";
    /// connect refused by the application.
    pub const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
    /// A call to an unknown or failed procedure.
    pub const CALL_FAILED: &str = "NetConnection.Call.Failed";
    /// publish accepted.
    pub const PUBLISH_START: &str = "NetStream.Publish.Start";
    /// publish refused: the name is in use or invalid.
    pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
    /// publish refused by policy.
    pub const PUBLISH_DENIED: &str = "NetStream.Publish.Denied";
    /// Publishing ended.
    pub const UNPUBLISH_SUCCESS: &str = "NetStream.Unpublish.Success";
    /// play: the playlist was reset.
    pub const PLAY_RESET: &str = "NetStream.Play.Reset";
    /// play accepted.
    pub const PLAY_START: &str = "NetStream.Play.Start";
    /// play: the stream is not available.
    pub const PLAY_STREAM_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
    /// play refused by policy.
    pub const PLAY_FAILED: &str = "NetStream.Play.Failed";
    /// play stopped.
    pub const PLAY_STOP: &str = "NetStream.Play.Stop";
    /// The publisher of the played stream started.
    pub const PLAY_PUBLISH_NOTIFY: &str = "NetStream.Play.PublishNotify";
    /// The publisher of the played stream stopped.
    pub const PLAY_UNPUBLISH_NOTIFY: &str = "NetStream.Play.UnpublishNotify";
    /// Data (metadata) on the played stream begins.
    pub const DATA_START: &str = "NetStream.Data.Start";
    /// Playback paused.
    pub const PAUSE_NOTIFY: &str = "NetStream.Pause.Notify";
    /// Playback resumed.
    pub const UNPAUSE_NOTIFY: &str = "NetStream.Unpause.Notify";
    /// E-RTMP v2: the server asks the client to reconnect (to the `tcUrl` given, or the same).
    pub const CONNECT_RECONNECT_REQUEST: &str = "NetConnection.Connect.ReconnectRequest";
}

/// An `onStatus` info object: `{level, code, description}` plus extra properties.
pub fn status_object(level: StatusLevel, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::from(level.as_str())),
        ("code", Value::from(code)),
        ("description", Value::from(description)),
    ])
}

/// An `onStatus(0, null, info)` command.
pub fn on_status(level: StatusLevel, code: &str, description: &str) -> Command {
    Command::new(
        "onStatus",
        0.0,
        Value::Null,
        vec![status_object(level, code, description)],
    )
}

/// A `_result(transaction id, object, arguments...)` reply.
pub fn result(transaction_id: f64, object: Value, arguments: Vec<Value>) -> Command {
    Command::new("_result", transaction_id, object, arguments)
}

/// An `_error(transaction id, null, info)` reply.
pub fn error(transaction_id: f64, code: &str, description: &str) -> Command {
    Command::new(
        "_error",
        transaction_id,
        Value::Null,
        vec![status_object(StatusLevel::Error, code, description)],
    )
}

/// The status fields of an `onStatus`, `_result` or `_error` info object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// status, warning or error.
    pub level: StatusLevel,
    /// e.g. `NetStream.Publish.Start`.
    pub code: String,
    /// Human-readable text, possibly empty.
    pub description: String,
}

impl Status {
    /// Reads the info object of a status-carrying command (first argument that is an object
    /// with a `code`), if there is one.
    pub fn from_command(command: &Command) -> Option<Self> {
        std::iter::once(&command.object)
            .chain(command.arguments.iter())
            .find_map(|value| {
                let code = value.property("code")?.as_str()?;
                let level = value
                    .property("level")
                    .and_then(Value::as_str)
                    .map(StatusLevel::parse)
                    .unwrap_or(StatusLevel::Status);
                let description = value
                    .property("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Some(Self {
                    level,
                    code: code.to_owned(),
                    description: description.to_owned(),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn create_stream_golden_bytes() {
        // "createStream", 4.0, null
        let bytes = hex("02 00 0c 63 72 65 61 74 65 53 74 72 65 61 6d \
             00 40 10 00 00 00 00 00 00 05");
        let command = Command::decode(&bytes, &amf0::Limits::default()).unwrap();
        assert_eq!(command.name, "createStream");
        assert_eq!(command.transaction_id, 4.0);
        assert_eq!(command.object, Value::Null);
        assert!(command.arguments.is_empty());
        assert_eq!(command.encode().as_ref(), bytes.as_slice());
    }

    #[test]
    fn publish_arguments() {
        let command = Command::new(
            "publish",
            5.0,
            Value::Null,
            vec![Value::from("key?token=1"), Value::from("live")],
        );
        let decoded = Command::decode(&command.encode(), &amf0::Limits::default()).unwrap();
        assert_eq!(decoded, command);
        assert_eq!(decoded.string_argument(0), Some("key?token=1"));
        assert_eq!(decoded.string_argument(1), Some("live"));
        assert_eq!(decoded.number_argument(0), None);
    }

    #[test]
    fn short_and_bad_commands() {
        let limits = amf0::Limits::default();
        assert!(matches!(
            Command::decode(&[], &limits),
            Err(CommandError::Empty)
        ));
        assert!(matches!(
            Command::decode(&hex("00 3f f0 00 00 00 00 00 00"), &limits),
            Err(CommandError::NameNotString)
        ));
        let only_name = Command::decode(&hex("02 00 01 78"), &limits).unwrap();
        assert_eq!(only_name.transaction_id, 0.0);
        assert_eq!(only_name.object, Value::Null);
    }

    #[test]
    fn status_round_trip() {
        let command = on_status(StatusLevel::Error, code::PUBLISH_BAD_NAME, "in use");
        let decoded = Command::decode(&command.encode(), &amf0::Limits::default()).unwrap();
        assert_eq!(
            Status::from_command(&decoded),
            Some(Status {
                level: StatusLevel::Error,
                code: code::PUBLISH_BAD_NAME.into(),
                description: "in use".into()
            })
        );
    }
}
