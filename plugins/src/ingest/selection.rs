//! `track-selection`: which of a source's streams become pads. Streams are numbered per kind
//! in the order the source exposes them, as RemoteMedia numbers them: `audio:0`, `video:0`...

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

/// One stream of a source: its kind and its number among streams of that kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Track {
    pub kind: Kind,
    pub index: u32,
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.name(), self.index)
    }
}

/// Why a `track-selection` value was refused; `text` is the whole value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("track-selection '{text}': item '{item}': write audio:N or video:N")]
    NoIndex { text: String, item: String },
    #[error("track-selection '{text}': item '{item}': unknown kind '{kind}' (audio or video)")]
    UnknownKind {
        text: String,
        item: String,
        kind: String,
    },
    #[error("track-selection '{text}': item '{item}': '{index}' is not a number")]
    BadIndex {
        text: String,
        item: String,
        index: String,
    },
    #[error(
        "track-selection '{0}' names no track: use first-audio-video, all, or a list such as \
         audio:0,video:0"
    )]
    Empty(String),
}

/// The streams a source turned out to have lack what the selection asks for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MissingStream {
    #[error("the source has no {missing} stream (it has: {})", have(found))]
    Listed { missing: Track, found: Vec<Track> },
    #[error("the source has no audio or video stream")]
    NoMedia,
}

/// The streams in `found`, for messages.
fn have(found: &[Track]) -> String {
    if found.is_empty() {
        return "no audio or video stream".to_owned();
    }
    found
        .iter()
        .map(Track::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Selection {
    #[default]
    FirstAudioVideo,
    All,
    List(Vec<Track>),
}

impl Selection {
    pub fn parse(text: &str) -> Result<Self, SelectionError> {
        match text.trim() {
            "" | "first-audio-video" => return Ok(Selection::FirstAudioVideo),
            "all" => return Ok(Selection::All),
            _ => {}
        }
        let mut tracks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, index) = item
                .split_once(':')
                .ok_or_else(|| SelectionError::NoIndex {
                    text: text.to_owned(),
                    item: item.to_owned(),
                })?;
            let kind = match kind {
                "audio" => Kind::Audio,
                "video" => Kind::Video,
                other => {
                    return Err(SelectionError::UnknownKind {
                        text: text.to_owned(),
                        item: item.to_owned(),
                        kind: other.to_owned(),
                    });
                }
            };
            let index = index.parse().map_err(|_| SelectionError::BadIndex {
                text: text.to_owned(),
                item: item.to_owned(),
                index: index.to_owned(),
            })?;
            tracks.push(Track { kind, index });
        }
        if tracks.is_empty() {
            return Err(SelectionError::Empty(text.to_owned()));
        }
        Ok(Selection::List(tracks))
    }

    pub fn wants(&self, track: Track) -> bool {
        match self {
            Selection::FirstAudioVideo => track.index == 0,
            Selection::All => true,
            Selection::List(list) => list.contains(&track),
        }
    }

    /// Checks the streams a source turned out to have: a listed stream it lacks, or a source
    /// with no audio or video at all, is an error naming what there is.
    pub fn check(&self, found: &[Track]) -> Result<(), MissingStream> {
        match self {
            Selection::List(list) => match list.iter().find(|t| !found.contains(t)) {
                Some(missing) => Err(MissingStream::Listed {
                    missing: *missing,
                    found: found.to_vec(),
                }),
                None => Ok(()),
            },
            _ if found.is_empty() => Err(MissingStream::NoMedia),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::FirstAudioVideo => f.write_str("first-audio-video"),
            Selection::All => f.write_str("all"),
            Selection::List(list) => {
                let items: Vec<String> = list.iter().map(Track::to_string).collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A0: Track = Track {
        kind: Kind::Audio,
        index: 0,
    };
    const A1: Track = Track {
        kind: Kind::Audio,
        index: 1,
    };
    const V0: Track = Track {
        kind: Kind::Video,
        index: 0,
    };

    #[test]
    fn parse_and_match() {
        assert_eq!(Selection::parse("").unwrap(), Selection::FirstAudioVideo);
        let first = Selection::parse("first-audio-video").unwrap();
        assert!(first.wants(A0) && first.wants(V0) && !first.wants(A1));
        assert!(Selection::parse("all").unwrap().wants(A1));
        let list = Selection::parse("audio:1, video:0").unwrap();
        assert!(list.wants(A1) && list.wants(V0) && !list.wants(A0));
        assert_eq!(list.to_string(), "audio:1,video:0");
        assert!(matches!(
            Selection::parse("subtitle:0"),
            Err(SelectionError::UnknownKind { kind, .. }) if kind == "subtitle"
        ));
        let bad = Selection::parse("audio:x").unwrap_err();
        assert!(matches!(bad, SelectionError::BadIndex { .. }));
        assert_eq!(
            bad.to_string(),
            "track-selection 'audio:x': item 'audio:x': 'x' is not a number"
        );
        assert!(matches!(
            Selection::parse("audio"),
            Err(SelectionError::NoIndex { .. })
        ));
        assert!(matches!(
            Selection::parse(" , "),
            Err(SelectionError::Empty(_))
        ));
    }

    #[test]
    fn missing_streams_are_named() {
        let list = Selection::parse("audio:0").unwrap();
        let err = list.check(&[V0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the source has no audio:0 stream (it has: video:0)"
        );
        assert!(list.check(&[A0, V0]).is_ok());
        assert!(Selection::FirstAudioVideo.check(&[V0]).is_ok());
        assert_eq!(Selection::All.check(&[]), Err(MissingStream::NoMedia));
    }
}
