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

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Selection {
    #[default]
    FirstAudioVideo,
    All,
    List(Vec<Track>),
}

impl Selection {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" | "first-audio-video" => return Ok(Selection::FirstAudioVideo),
            "all" => return Ok(Selection::All),
            _ => {}
        }
        let mut tracks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, index) = item.split_once(':').ok_or_else(|| {
                format!("track-selection item '{item}': write audio:N or video:N")
            })?;
            let kind = match kind {
                "audio" => Kind::Audio,
                "video" => Kind::Video,
                other => {
                    return Err(format!(
                        "track-selection item '{item}': unknown kind '{other}' (audio or video)"
                    ));
                }
            };
            let index = index
                .parse()
                .map_err(|_| format!("track-selection item '{item}': '{index}' is not a number"))?;
            tracks.push(Track { kind, index });
        }
        if tracks.is_empty() {
            return Err("track-selection is empty: use first-audio-video, all, or a list such as audio:0,video:0".into());
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
    pub fn check(&self, found: &[Track]) -> Result<(), String> {
        let have = || {
            if found.is_empty() {
                "no audio or video stream".to_owned()
            } else {
                found
                    .iter()
                    .map(Track::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match self {
            Selection::List(list) => match list.iter().find(|t| !found.contains(t)) {
                Some(missing) => Err(format!(
                    "the source has no {missing} stream (it has: {})",
                    have()
                )),
                None => Ok(()),
            },
            _ if found.is_empty() => Err(format!("the source has {}", have())),
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
        assert!(
            Selection::parse("subtitle:0")
                .unwrap_err()
                .contains("unknown kind")
        );
        assert!(
            Selection::parse("audio:x")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(Selection::parse("audio").unwrap_err().contains("audio:N"));
    }

    #[test]
    fn missing_streams_are_named() {
        let list = Selection::parse("audio:0").unwrap();
        let err = list.check(&[V0]).unwrap_err();
        assert_eq!(err, "the source has no audio:0 stream (it has: video:0)");
        assert!(list.check(&[A0, V0]).is_ok());
        assert!(Selection::FirstAudioVideo.check(&[V0]).is_ok());
        assert!(
            Selection::All
                .check(&[])
                .unwrap_err()
                .contains("no audio or video")
        );
    }
}
