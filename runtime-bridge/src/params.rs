//! Typed parameter specs for nodes and their strict validation.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug)]
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

fn check_value(spec: &ParamSpec, value: &Value) -> Result<Value, String> {
    let got = || compact(value);
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
                .ok_or_else(|| format!("must be an integer, got {}", got()))?;
            if v < min || v > max {
                return Err(format!("must be within {min}..{max}, got {v}"));
            }
            Ok(v.into())
        }
        ParamType::Float { min, max } => {
            let v = value
                .as_f64()
                .ok_or_else(|| format!("must be a number, got {}", got()))?;
            if !(min..=max).contains(&v) {
                return Err(format!("must be within {min}..{max}, got {v}"));
            }
            Ok(v.into())
        }
        ParamType::Bool => value
            .as_bool()
            .map(Value::from)
            .ok_or_else(|| format!("must be true or false, got {}", got())),
        ParamType::Str => value
            .as_str()
            .map(Value::from)
            .ok_or_else(|| format!("must be a string, got {}", got())),
        ParamType::Enum(names) => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("must be one of {}, got {}", names.join(", "), got()))?;
            names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(s))
                .map(|n| Value::from(*n))
                .ok_or_else(|| {
                    format!(
                        "must be one of {}, got {s:?}{}",
                        names.join(", "),
                        suggestion(&closest(s, names.iter().copied()))
                    )
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

/// Checks `raw` against `specs`. Returns the params or every problem found, each as
/// (param name as written, message).
pub fn validate(
    specs: &'static [ParamSpec],
    raw: &Map<String, Value>,
) -> Result<Params, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let mut values = BTreeMap::new();
    let mut seen: BTreeMap<&'static str, &str> = BTreeMap::new();
    for (key, value) in raw {
        let canonical = snake_case(key);
        let Some(spec) = specs.iter().find(|s| s.name == canonical) else {
            let hint = if specs.is_empty() {
                " (this node takes no params)".to_string()
            } else {
                suggestion(&closest(key, specs.iter().map(|s| s.name)))
            };
            errors.push((key.clone(), format!("unknown param{hint}")));
            continue;
        };
        if let Some(first) = seen.insert(spec.name, key) {
            errors.push((key.clone(), format!("given twice, also as {first:?}")));
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
            Err(e) => errors.push((key.clone(), e)),
        }
    }
    for spec in specs {
        if values.contains_key(spec.name) || errors.iter().any(|(k, _)| snake_case(k) == spec.name)
        {
            continue;
        }
        match spec.default {
            ParamDefault::Required => errors.push((
                spec.name.to_string(),
                format!("is required ({}: {})", spec.ty, spec.doc),
            )),
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

    fn run(v: Value) -> Result<Params, Vec<(String, String)>> {
        validate(SPECS, v.as_object().unwrap())
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
        let text = format!("{errs:?}");
        assert!(
            text.contains("unknown param (did you mean \\\"threshold\\\""),
            "{text}"
        );
        assert!(text.contains("must be one of Low, Medium, High"), "{text}");
        assert!(text.contains("must be an integer, got \\\"x\\\""), "{text}");
        assert_eq!(errs.len(), 3);
    }

    #[test]
    fn range_missing_and_duplicates() {
        let errs = run(json!({"threshold": 1.7})).unwrap_err();
        assert!(
            errs.iter()
                .any(|(k, m)| k == "threshold" && m == "must be within 0..1, got 1.7")
        );
        assert!(
            errs.iter()
                .any(|(k, m)| k == "target_rate" && m.starts_with("is required"))
        );
        let errs = run(json!({"target_rate": 8000, "targetRate": 16000})).unwrap_err();
        assert!(errs[0].1.contains("given twice"), "{errs:?}");
    }

    #[test]
    fn snake_case_conversion() {
        assert_eq!(snake_case("minSpeechDurationMs"), "min_speech_duration_ms");
        assert_eq!(snake_case("chunk_size"), "chunk_size");
    }
}
