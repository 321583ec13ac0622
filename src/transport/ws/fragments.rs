//! WebSocket messages sent in fragments (RFC 6455 §5.4), put back together.
//!
//! A client library or a proxy in between may split one message over several frames. A
//! legacy dashboard's `ack` sent that way used to be refused, and the alert stayed open
//! while the nurse believed it acknowledged. The codec hands each fragment over on its
//! own; this joins them, holding at most [`MAX_FRAME_BYTES`] of one message.

use actix_http::ws::Item;
use bytes::{Bytes, BytesMut};

use super::MAX_FRAME_BYTES;

/// What one fragment completes.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// The message is not finished yet.
    Pending,
    /// A whole text message.
    Text(String),
    /// A whole binary message (refused like a single binary frame).
    Binary,
    /// A text message over [`MAX_FRAME_BYTES`] in all (refused like a single large frame).
    Oversize,
    /// A text message that is not UTF-8 (a protocol error, as for a single frame).
    NotUtf8,
    /// A continuation with no message begun: nothing to join it to.
    Stray,
}

/// The message being received in fragments, if any.
#[derive(Debug, Default)]
pub struct Fragments {
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    bytes: BytesMut,
    /// Went over the limit: the rest is only counted, not kept.
    oversize: bool,
}

impl Fragments {
    /// Takes the next fragment. (The codec refuses a first fragment while a message is
    /// unfinished, and a continuation with none begun; `Stray` is the latter all the same.)
    pub fn push(&mut self, item: Item) -> Assembled {
        match item {
            Item::FirstText(bytes) => self.begin(true, &bytes),
            Item::FirstBinary(bytes) => self.begin(false, &bytes),
            Item::Continue(bytes) => match self.partial.as_mut() {
                Some(partial) => {
                    partial.append(&bytes);
                    Assembled::Pending
                }
                None => Assembled::Stray,
            },
            Item::Last(bytes) => match self.partial.take() {
                Some(mut partial) => {
                    partial.append(&bytes);
                    partial.finish()
                }
                None => Assembled::Stray,
            },
        }
    }

    fn begin(&mut self, text: bool, bytes: &Bytes) -> Assembled {
        let mut partial = Partial {
            text,
            bytes: BytesMut::new(),
            oversize: false,
        };
        partial.append(bytes);
        self.partial = Some(partial);
        Assembled::Pending
    }
}

impl Partial {
    fn append(&mut self, bytes: &Bytes) {
        if self.oversize {
            return;
        }
        if self.bytes.len() + bytes.len() > MAX_FRAME_BYTES {
            self.oversize = true;
            self.bytes = BytesMut::new();
        } else if self.text {
            self.bytes.extend_from_slice(bytes);
        }
    }

    fn finish(self) -> Assembled {
        match (self.text, self.oversize) {
            (false, _) => Assembled::Binary,
            (true, true) => Assembled::Oversize,
            (true, false) => {
                String::from_utf8(self.bytes.to_vec()).map_or(Assembled::NotUtf8, Assembled::Text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn fragments_make_one_message() {
        let mut f = Fragments::default();
        assert_eq!(
            f.push(Item::FirstText(text("{\"type\":"))),
            Assembled::Pending
        );
        assert_eq!(f.push(Item::Continue(text("\"ping\""))), Assembled::Pending);
        assert_eq!(
            f.push(Item::Last(text("}"))),
            Assembled::Text("{\"type\":\"ping\"}".to_owned())
        );
    }

    #[test]
    fn a_character_split_between_fragments_is_joined() {
        let mut f = Fragments::default();
        let bytes = "né".as_bytes();
        f.push(Item::FirstText(Bytes::copy_from_slice(&bytes[..2])));
        assert_eq!(
            f.push(Item::Last(Bytes::copy_from_slice(&bytes[2..]))),
            Assembled::Text("né".to_owned())
        );
    }

    #[test]
    fn refusals_match_those_of_single_frames() {
        let mut f = Fragments::default();
        f.push(Item::FirstText(text(&"x".repeat(MAX_FRAME_BYTES))));
        f.push(Item::Continue(text("x")));
        assert_eq!(f.push(Item::Last(text("}"))), Assembled::Oversize);

        f.push(Item::FirstBinary(text("ab")));
        assert_eq!(f.push(Item::Last(text("cd"))), Assembled::Binary);

        f.push(Item::FirstText(Bytes::from_static(&[0xff])));
        assert_eq!(f.push(Item::Last(text("a"))), Assembled::NotUtf8);

        assert_eq!(f.push(Item::Continue(text("a"))), Assembled::Stray);
        assert_eq!(f.push(Item::Last(text("a"))), Assembled::Stray);
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let mut f = Fragments::default();
        f.push(Item::FirstText(text(&"x".repeat(MAX_FRAME_BYTES - 1))));
        assert_eq!(
            f.push(Item::Last(text("y"))),
            Assembled::Text(format!("{}y", "x".repeat(MAX_FRAME_BYTES - 1)))
        );
    }
}
