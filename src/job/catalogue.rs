//! Every stage a chain may hold, with each parameter's default, range and choices, for
//! `longwave stages` and the docs.
//!
//! Nothing here is written twice: the defaults are what serde fills in for `{"type": …}`, the
//! ranges are what the stage's own validation reports for an absurd value, and the choices are
//! what serde lists for an unknown variant. A parameter added to a stage appears here by itself.

use super::spec::StageSpec;
use serde::Serialize;
use serde_json::{json, Value};

/// The `type` names of every stage, in the order they are documented.
pub const STAGE_TYPES: &[&str] = &["gain", "normalize", "silence", "pan8d", "reverb", "limiter"];

/// One stage of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct StageDoc {
    /// The stage's `type`.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Its parameters.
    pub params: Vec<ParamDoc>,
}

/// One parameter of a stage.
#[derive(Debug, Clone, Serialize)]
pub struct ParamDoc {
    /// The field name, as written in a chain.
    pub name: String,
    /// Its default (`null`: unset unless given).
    pub default: Value,
    /// The allowed range of a number, inclusive.
    pub range: Option<(f64, f64)>,
    /// The allowed values of a string (serde's own list).
    pub choices: Option<String>,
}

/// The catalogue of every stage.
pub fn stage_catalogue() -> Vec<StageDoc> {
    STAGE_TYPES
        .iter()
        .filter_map(|&type_name| {
            let spec: StageSpec = serde_json::from_value(json!({ "type": type_name })).ok()?;
            let defaults = serde_json::to_value(&spec).ok()?;
            let params = defaults
                .as_object()?
                .iter()
                .filter(|(name, _)| name.as_str() != "type")
                .map(|(name, default)| ParamDoc {
                    name: name.clone(),
                    default: default.clone(),
                    range: probe_range(type_name, name),
                    choices: probe_choices(type_name, name)
                        .or_else(|| probe_alternatives(type_name, name, default)),
                })
                .collect();
            Some(StageDoc {
                type_name,
                summary: spec.summary(),
                params,
            })
        })
        .collect()
}

/// The range the stage's validation reports for an absurd value of `field`, if it is a number.
fn probe_range(type_name: &str, field: &str) -> Option<(f64, f64)> {
    [1e300, -1e300].iter().find_map(|&absurd| {
        let spec: StageSpec =
            serde_json::from_value(json!({ "type": type_name, field: absurd })).ok()?;
        match spec.validate(0) {
            Err(super::SpecError::OutOfRange {
                field: f, min, max, ..
            }) if f == format!("chain[0].{field}") => Some((min, max)),
            _ => None,
        }
    })
}

/// The values serde accepts for `field`, if it is a choice of strings: the "expected one of …"
/// part of the error for a value no stage accepts.
fn probe_choices(type_name: &str, field: &str) -> Option<String> {
    let error = serde_json::from_value::<StageSpec>(
        json!({ "type": type_name, field: "\u{1}not-a-choice" }),
    )
    .err()?
    .to_string();
    let expected = error.split_once("expected ")?.1;
    expected.contains('`').then(|| {
        expected
            .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
            .to_owned()
    })
}

/// For a number that also takes a word or a boolean (`threshold_db: "auto"`, pydub's
/// `keep_silence: true`): the ones the stage accepts, as `or "auto"`.
fn probe_alternatives(type_name: &str, field: &str, default: &Value) -> Option<String> {
    if !default.is_number() {
        return None;
    }
    let accepted: Vec<String> = [json!("auto"), json!(true), json!(false)]
        .into_iter()
        .filter(|candidate| {
            serde_json::from_value::<StageSpec>(json!({ "type": type_name, field: candidate }))
                .is_ok_and(|spec| spec.validate(0).is_ok())
        })
        .map(|candidate| candidate.to_string())
        .collect();
    (!accepted.is_empty()).then(|| format!("or {}", accepted.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'a>(catalogue: &'a [StageDoc], stage: &str, name: &str) -> &'a ParamDoc {
        catalogue
            .iter()
            .find(|s| s.type_name == stage)
            .and_then(|s| s.params.iter().find(|p| p.name == name))
            .unwrap_or_else(|| panic!("{stage}.{name}"))
    }

    #[test]
    fn every_stage_with_its_defaults_ranges_and_choices() {
        let catalogue = stage_catalogue();
        assert_eq!(catalogue.len(), STAGE_TYPES.len(), "every type parses");
        let gain = param(&catalogue, "gain", "gain_db");
        assert_eq!(gain.default, json!(0.0));
        assert_eq!(gain.range, Some(super::super::spec::GAIN_DB_RANGE));
        let room = param(&catalogue, "reverb", "room_size");
        assert_eq!(
            (room.default.clone(), room.range),
            (json!(0.5), Some((0.0, 1.0)))
        );
        let tail = param(&catalogue, "reverb", "tail");
        assert_eq!((tail.range, tail.choices.clone()), (None, None));
        let threshold = param(&catalogue, "silence", "threshold_db");
        assert_eq!(threshold.range, Some((-90.0, -10.0)));
        assert_eq!(threshold.choices.as_deref(), Some("or \"auto\""));
        let keep = param(&catalogue, "silence", "keep_silence_ms");
        assert_eq!(keep.choices.as_deref(), Some("or true, false"));
        let mode = param(&catalogue, "limiter", "mode");
        let choices = mode.choices.clone().unwrap_or_default();
        assert!(
            choices.contains("`juce`") && choices.contains("`true_peak`"),
            "{choices}"
        );
        // Every stage says what it does, and every number a stage checks has its range.
        for stage in &catalogue {
            assert!(!stage.summary.is_empty());
            assert!(!stage.params.is_empty() || stage.type_name == "gain");
        }
    }
}
