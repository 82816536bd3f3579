//! `TextCollectorNode`: joins streamed text (tokens, partial transcripts) into sentences.

use regex::Regex;

use crate::data::{Packet, RuntimeData};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

const DEFAULT_SPLIT: &str = r"[.!?]+\s+";

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "split_pattern",
        ParamType::Str,
        ParamDefault::Str(DEFAULT_SPLIT),
        "regular expression that ends a sentence; the match stays with the sentence before it",
    ),
    ParamSpec::new(
        "min_sentence_length",
        ParamType::Int {
            min: 0,
            max: 100_000,
        },
        ParamDefault::Int(3),
        "shorter sentences are joined to the next one",
    ),
    ParamSpec::new(
        "yield_partial_on_end",
        ParamType::Bool,
        ParamDefault::Bool(true),
        "emit the unfinished sentence at end of stream",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "TextCollectorNode",
    aliases: &["TextCollector"],
    doc: "Joins streamed text (text, or JSON with a \"text\" field) into sentences, one text output each.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(TextCollector::new(p)?)),
    format,
    latency_ns: no_latency,
};

fn format(p: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    pattern(p)?;
    match input {
        StreamFormat::Text | StreamFormat::Json | StreamFormat::Any => Ok(StreamFormat::Text),
        other => Err(NodeError::BadInput(format!(
            "TextCollectorNode takes text or JSON, not {other}"
        ))),
    }
}

/// A `split_pattern` that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("param \"split_pattern\" is not a valid regular expression: {0}")]
struct BadSplitPattern(#[source] regex::Error);

impl From<BadSplitPattern> for NodeError {
    fn from(e: BadSplitPattern) -> Self {
        NodeError::Config(e.to_string())
    }
}

fn pattern(p: &Params) -> Result<Regex, BadSplitPattern> {
    let source = p.str("split_pattern").unwrap_or(DEFAULT_SPLIT);
    Regex::new(source).map_err(BadSplitPattern)
}

struct TextCollector {
    split: Regex,
    min_len: usize,
    partial_on_end: bool,
    pending: String,
    /// Where the next search for a sentence end starts (after text too short to emit).
    searched: usize,
}

impl TextCollector {
    fn new(p: &Params) -> Result<Self, NodeError> {
        Ok(Self {
            split: pattern(p)?,
            min_len: p.i64("min_sentence_length").unwrap_or(3) as usize,
            partial_on_end: p.bool("yield_partial_on_end").unwrap_or(true),
            pending: String::new(),
            searched: 0,
        })
    }

    fn emit_sentences(&mut self, out: &mut Emitter) {
        while let Some(m) = self.split.find_at(&self.pending, self.searched) {
            if m.end() == m.start() {
                // An empty match would never advance.
                self.searched = m.end()
                    + self.pending[m.end()..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                if self.searched > self.pending.len() {
                    break;
                }
                continue;
            }
            let sentence = self.pending[..m.end()].trim();
            if sentence.chars().count() < self.min_len {
                self.searched = m.end();
                continue;
            }
            out.emit(RuntimeData::Text(sentence.to_string()));
            self.pending.drain(..m.end());
            self.searched = 0;
        }
    }
}

impl Node for TextCollector {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let text = match &input.data {
            RuntimeData::Text(t) => t.as_str(),
            RuntimeData::Json(j) => match j.get("text").and_then(serde_json::Value::as_str) {
                Some(t) => t,
                None => return Ok(()),
            },
            _ => {
                out.emit_at(input.data, input.pts);
                return Ok(());
            }
        };
        self.pending.push_str(text);
        self.emit_sentences(out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        if self.partial_on_end && !rest.is_empty() {
            out.emit(RuntimeData::Text(rest.to_string()));
        }
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.pending.clear();
        self.searched = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(params: serde_json::Value) -> Result<TextCollector, NodeError> {
        TextCollector::new(&crate::params::validate(PARAMS, params.as_object().unwrap()).unwrap())
    }

    fn run(n: &mut TextCollector, chunks: &[&str]) -> Vec<String> {
        let mut e = Emitter::default();
        for c in chunks {
            n.process(Packet::new(RuntimeData::Text((*c).to_string())), &mut e)
                .unwrap();
        }
        n.finish(&mut e).unwrap();
        e.packets
            .into_iter()
            .map(|p| match p.data {
                RuntimeData::Text(t) => t,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn tokens_become_sentences() {
        let mut n = node(json!({})).unwrap();
        let got = run(&mut n, &["Hel", "lo there. How ", "are you? I am", " fine"]);
        assert_eq!(got, vec!["Hello there.", "How are you?", "I am fine"]);
    }

    #[test]
    fn short_sentences_join_the_next_and_partials_can_be_dropped() {
        let mut n = node(json!({"min_sentence_length": 5, "yield_partial_on_end": false})).unwrap();
        let got = run(&mut n, &["Hi. ", "Nice to meet you. ", "Bye"]);
        assert_eq!(got, vec!["Hi. Nice to meet you."]);
    }

    #[test]
    fn json_text_fields_and_custom_patterns() {
        let mut n = node(json!({"split_pattern": r"\n"})).unwrap();
        let mut e = Emitter::default();
        n.process(
            Packet::new(RuntimeData::Json(json!({"text": "line one\nline"}))),
            &mut e,
        )
        .unwrap();
        n.process(Packet::new(RuntimeData::Json(json!({"other": 1}))), &mut e)
            .unwrap();
        n.process(
            Packet::new(RuntimeData::Json(json!({"text": " two\n"}))),
            &mut e,
        )
        .unwrap();
        let texts: Vec<_> = e.packets.iter().map(|p| format!("{:?}", p.data)).collect();
        assert_eq!(texts, vec![r#"Text("line one")"#, r#"Text("line two")"#]);
        let bad = node(json!({"split_pattern": "(["})).err().unwrap();
        assert!(
            matches!(&bad, NodeError::Config(m) if m.contains("not a valid regular expression")),
            "{bad:?}"
        );
    }
}
