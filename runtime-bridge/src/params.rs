//! Typed parameter specs for nodes and their strict validation.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamType {
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    Str,
    /// One of these names (matched case-insensitively, stored as spelled here).
    Enum(&'static [&'static str]),
    /// Any JSON value (sub-manifests, lists).
    Json,
}

#[derive(Clone, Copy, Debug)]
pub enum ParamDefault {
    /// The manifest must give it.
    Required,
    /// Absent means "derive it" (from the input, from another param); the doc says how.
    Derived,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
}

#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: ParamDefault,
    pub doc: &'static str,
}

impl ParamSpec {
    pub const fn new(
        name: &'static str,
        ty: ParamType,
        default: ParamDefault,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            ty,
            default,
            doc,
        }
    }

    fn default_value(&self) -> Option<Value> {
        match self.default {
            ParamDefault::Required | ParamDefault::Derived => None,
            ParamDefault::Int(v) => Some(v.into()),
            ParamDefault::Float(v) => Some(v.into()),
            ParamDefault::Bool(v) => Some(v.into()),
            ParamDefault::Str(v) => Some(v.into()),
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int { min, max } => write!(f, "integer {min}..{max}"),
            Self::Float { min, max } => write!(f, "number {min}..{max}"),
            Self::Bool => f.write_str("boolean"),
            Self::Str => f.write_str("string"),
            Self::Enum(names) => write!(f, "one of {}", names.join(", ")),
            Self::Json => f.write_str("any JSON value"),
        }
    }
}

impl fmt::Display for ParamDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Required => f.write_str("required"),
            Self::Derived => f.write_str("derived"),
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Str(v) => write!(f, "{v:?}"),
        }
    }
}

/// Validated params: every spec'd param with a value or a default, nothing else.
#[derive(Clone, Debug, Default)]
pub struct Params {
    values: BTreeMap<&'static str, Value>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Value::as_f64)
    }
    pub fn i64(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_i64)
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }
}

/// `targetRate` -> `target_rate`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Up to three candidates close to `wanted`, best first.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let wanted = wanted.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wanted, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

/// " (did you mean "a", "b"?)" or "".
pub fn suggestion(names: &[&str]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        format!(" (did you mean {}?)", quoted.join(", "))
    }
}

/// What is wrong with one param.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown param{}", suggestion(.closest))]
    Unknown { closest: Vec<&'static str> },
    #[error("unknown param (this node takes no params)")]
    NoneTaken,
    /// The same param under two spellings (`target_rate` and `targetRate`).
    #[error("given twice, also as {first:?}")]
    Twice { first: String },
    #[error("must be {}, got {}", expected_kind(.expected), compact(.got))]
    WrongType { expected: ParamType, got: Value },
    #[error("must be within {min}..{max}, got {got}")]
    IntOutOfRange { min: i64, max: i64, got: i64 },
    #[error("must be within {min}..{max}, got {got}")]
    FloatOutOfRange { min: f64, max: f64, got: f64 },
    #[error("must be one of {}, got {got:?}{}", .names.join(", "), suggestion(.closest))]
    NotInEnum {
        names: &'static [&'static str],
        got: String,
        closest: Vec<&'static str>,
    },
    #[error("is required ({ty}: {doc})")]
    Missing { ty: ParamType, doc: &'static str },
}

/// A param as the manifest spells it, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("param {name:?} {problem}")]
pub struct BadParam {
    pub name: String,
    #[source]
    pub problem: ParamError,
}

/// "an integer", "one of Low, Medium, High": what a value of `ty` must be.
fn expected_kind(ty: &ParamType) -> String {
    match ty {
        ParamType::Int { .. } => "an integer".into(),
        ParamType::Float { .. } => "a number".into(),
        ParamType::Bool => "true or false".into(),
        ParamType::Str => "a string".into(),
        ParamType::Enum(names) => format!("one of {}", names.join(", ")),
        ParamType::Json => "any JSON value".into(),
    }
}

fn check_value(spec: &ParamSpec, value: &Value) -> Result<Value, ParamError> {
    let wrong_type = || ParamError::WrongType {
        expected: spec.ty,
        got: value.clone(),
    };
    match spec.ty {
        ParamType::Int { min, max } => {
            let v = value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0)
                        .map(|f| f as i64)
                })
                .ok_or_else(wrong_type)?;
            if v < min || v > max {
                return Err(ParamError::IntOutOfRange { min, max, got: v });
            }
            Ok(v.into())
        }
        ParamType::Float { min, max } => {
            let v = value.as_f64().ok_or_else(wrong_type)?;
            if !(min..=max).contains(&v) {
                return Err(ParamError::FloatOutOfRange { min, max, got: v });
            }
            Ok(v.into())
        }
        ParamType::Bool => value.as_bool().map(Value::from).ok_or_else(wrong_type),
        ParamType::Str => value.as_str().map(Value::from).ok_or_else(wrong_type),
        ParamType::Enum(names) => {
            let s = value.as_str().ok_or_else(wrong_type)?;
            names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(s))
                .map(|n| Value::from(*n))
                .ok_or_else(|| ParamError::NotInEnum {
                    names,
                    got: s.to_owned(),
                    closest: closest(s, names.iter().copied()),
                })
        }
        ParamType::Json => Ok(value.clone()),
    }
}

fn compact(value: &Value) -> String {
    let s = value.to_string();
    if s.len() > 40 {
        format!("{}...", &s[..s.floor_char_boundary(40)])
    } else {
        s
    }
}

/// Checks `raw` against `specs`. Returns the params or every problem found.
pub fn validate(
    specs: &'static [ParamSpec],
    raw: &Map<String, Value>,
) -> Result<Params, Vec<BadParam>> {
    let mut errors = Vec::new();
    let mut bad = |name: &str, problem| {
        errors.push(BadParam {
            name: name.to_owned(),
            problem,
        })
    };
    let mut values = BTreeMap::new();
    let mut seen: BTreeMap<&'static str, &str> = BTreeMap::new();
    for (key, value) in raw {
        let canonical = snake_case(key);
        let Some(spec) = specs.iter().find(|s| s.name == canonical) else {
            bad(
                key,
                if specs.is_empty() {
                    ParamError::NoneTaken
                } else {
                    ParamError::Unknown {
                        closest: closest(key, specs.iter().map(|s| s.name)),
                    }
                },
            );
            continue;
        };
        if let Some(first) = seen.insert(spec.name, key) {
            bad(
                key,
                ParamError::Twice {
                    first: first.to_owned(),
                },
            );
            continue;
        }
        if value.is_null() && !matches!(spec.ty, ParamType::Json) {
            // An explicit null asks for the default; a required param stays missing.
            continue;
        }
        match check_value(spec, value) {
            Ok(v) => {
                values.insert(spec.name, v);
            }
            Err(problem) => bad(key, problem),
        }
    }
    for spec in specs {
        if values.contains_key(spec.name) || errors.iter().any(|e| snake_case(&e.name) == spec.name)
        {
            continue;
        }
        match spec.default {
            ParamDefault::Required => errors.push(BadParam {
                name: spec.name.to_owned(),
                problem: ParamError::Missing {
                    ty: spec.ty,
                    doc: spec.doc,
                },
            }),
            _ => {
                if let Some(v) = spec.default_value() {
                    values.insert(spec.name, v);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Params { values })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static SPECS: &[ParamSpec] = &[
        ParamSpec::new(
            "threshold",
            ParamType::Float { min: 0.0, max: 1.0 },
            ParamDefault::Float(0.5),
            "speech probability threshold",
        ),
        ParamSpec::new(
            "target_rate",
            ParamType::Int {
                min: 1,
                max: 768_000,
            },
            ParamDefault::Required,
            "output rate",
        ),
        ParamSpec::new(
            "quality",
            ParamType::Enum(&["Low", "Medium", "High"]),
            ParamDefault::Str("Medium"),
            "quality",
        ),
    ];

    fn run(v: Value) -> Result<Params, Vec<BadParam>> {
        validate(SPECS, v.as_object().unwrap())
    }

    fn problem<'a>(errors: &'a [BadParam], name: &str) -> &'a ParamError {
        &errors.iter().find(|e| e.name == name).unwrap().problem
    }

    #[test]
    fn camel_case_and_defaults() {
        let p = run(json!({"targetRate": 16000, "quality": "high"})).unwrap();
        assert_eq!(p.i64("target_rate"), Some(16000));
        assert_eq!(p.str("quality"), Some("High"));
        assert_eq!(p.f64("threshold"), Some(0.5));
    }

    #[test]
    fn every_problem_reported() {
        let errs =
            run(json!({"treshold": 0.4, "quality": "Ultra", "target_rate": "x"})).unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(
            matches!(problem(&errs, "treshold"), ParamError::Unknown { closest } if closest[0] == "threshold"),
            "{errs:?}"
        );
        assert!(matches!(
            problem(&errs, "quality"),
            ParamError::NotInEnum { got, .. } if got == "Ultra"
        ));
        assert_eq!(
            problem(&errs, "target_rate"),
            &ParamError::WrongType {
                expected: SPECS[1].ty,
                got: json!("x")
            }
        );
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with(r#"param "treshold" unknown param (did you mean "threshold""#),
            "{text:?}"
        );
        assert!(
            text[1].starts_with(r#"param "quality" must be one of Low, Medium, High, got "Ultra""#),
            "{text:?}"
        );
        assert_eq!(
            text[2],
            r#"param "target_rate" must be an integer, got "x""#
        );
    }

    #[test]
    fn range_missing_and_duplicates() {
        let errs = run(json!({"threshold": 1.7})).unwrap_err();
        assert_eq!(
            problem(&errs, "threshold").to_string(),
            "must be within 0..1, got 1.7"
        );
        assert!(matches!(
            problem(&errs, "target_rate"),
            ParamError::Missing { .. }
        ));
        let errs = run(json!({"target_rate": 8000, "targetRate": 16000})).unwrap_err();
        assert_eq!(
            errs[0].problem,
            ParamError::Twice {
                first: "target_rate".into()
            }
        );
    }

    #[test]
    fn snake_case_conversion() {
        assert_eq!(snake_case("minSpeechDurationMs"), "min_speech_duration_ms");
        assert_eq!(snake_case("chunk_size"), "chunk_size");
    }
}
