//! The job vocabulary (pedalboard's parameter names), its parsing and validation, and presets.

use crate::dsp::{
    Gain, Limiter, LimiterParams, Normalize, NormalizeParamError, NormalizeParams, Pan8d,
    Pan8dParams, ParamError, Reverb, ReverbParams, Silence, SilenceAction, SilenceMode,
    SilenceParams, Stage, Threshold,
};
use crate::encode::OutputFormat;
use serde::{Deserialize, Serialize};

/// One stage of a chain as a user writes it: `{"type": "gain", "gain_db": -3.0}`.
///
/// Unknown fields are rejected by the parser; values are range-checked by [`StageSpec::validate`].
/// Serialising a parsed spec gives every parameter's effective value (defaults filled in), which is
/// what the manifest records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StageSpec {
    /// Constant gain (pedalboard `Gain`; default 1.0 dB there, 0.0 dB here so a bare
    /// `{"type":"gain"}` is a no-op rather than a surprise).
    Gain {
        /// Gain in dB.
        #[serde(default)]
        gain_db: f64,
    },
    /// Freeverb with pedalboard's parameters (`room_size`, `damping`, `wet_level`, `dry_level`,
    /// `width`, `freeze_mode`) plus `tail`.
    Reverb(ReverbParams),
    /// Circular "8D" panning (`period_s`, `law`, `mode`, `depth`).
    Pan8d(Pan8dParams),
    /// Limiter: `true_peak` look-ahead ceiling (default) or pedalboard's `juce` limiter.
    Limiter(LimiterParams),
    /// Peak or loudness (LUFS) normalisation, measured in an analysis pass.
    Normalize(NormalizeParams),
    /// Silence detection, splitting (each piece its own output) or trimming; pydub-exact or
    /// accurate, with an optional automatic threshold.
    Silence(SilenceParams),
}

/// Most stages in one chain: the presets use at most 4, and each stage costs a block of memory
/// and its state (measured before the cap: 10,000 gain stages held 325 MiB).
pub const MAX_STAGES: usize = 32;

/// Most stages needing an analysis pass in one chain: each decodes the whole input once more.
pub const MAX_ANALYSIS_PASSES: usize = 4;

/// Longest chain JSON accepted, in bytes (32 stages with every parameter fit in 8 KiB).
pub const MAX_CHAIN_JSON_BYTES: usize = 1 << 20;

/// Allowed range of `gain_db`.
pub const GAIN_DB_RANGE: (f64, f64) = (-120.0, 48.0);

impl StageSpec {
    /// The stage's `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            StageSpec::Gain { .. } => "gain",
            StageSpec::Reverb(_) => "reverb",
            StageSpec::Pan8d(_) => "pan8d",
            StageSpec::Limiter(_) => "limiter",
            StageSpec::Normalize(_) => "normalize",
            StageSpec::Silence(_) => "silence",
        }
    }

    /// What the stage does, in one line (`longwave stages`).
    pub fn summary(&self) -> &'static str {
        match self {
            StageSpec::Gain { .. } => "constant gain in dB",
            StageSpec::Normalize(_) => {
                "peak or loudness (LUFS, EBU R128) normalisation, measured in an analysis pass"
            }
            StageSpec::Silence(_) => {
                "silence detection, split (one output per piece) or trim; pydub-exact or \
                 accurate, fixed or automatic threshold"
            }
            StageSpec::Pan8d(_) => "circular \"8D\" panning",
            StageSpec::Reverb(_) => "Freeverb, bit-identical to pedalboard.Reverb",
            StageSpec::Limiter(_) => {
                "look-ahead true-peak limiter, or pedalboard's JUCE limiter (mode \"juce\")"
            }
        }
    }

    /// Checks every parameter's range; `index` is the stage's position, used in messages.
    ///
    /// # Errors
    /// Names the field (`chain[1].gain_db`), the value and the allowed range.
    pub fn validate(&self, index: usize) -> Result<(), SpecError> {
        match self {
            StageSpec::Gain { gain_db } => check_range(index, "gain_db", *gain_db, GAIN_DB_RANGE),
            StageSpec::Reverb(params) => params.validate().map_err(|e| at(index, e)),
            StageSpec::Pan8d(params) => params.validate().map_err(|e| at(index, e)),
            StageSpec::Limiter(params) => params.validate().map_err(|e| at(index, e)),
            StageSpec::Normalize(params) => params.validate().map_err(|e| match e {
                NormalizeParamError::Range(e) => at(index, e),
                other => SpecError::Invalid {
                    index: Some(index),
                    reason: other.to_string(),
                },
            }),
            StageSpec::Silence(params) => params.validate().map_err(|e| at(index, e)),
        }
    }

    /// True for stages that delay the signal (look-ahead) or render a tail after the input ends.
    pub fn delays_or_rings(&self) -> bool {
        match self {
            StageSpec::Reverb(p) => p.tail,
            StageSpec::Limiter(_) => true,
            StageSpec::Pan8d(p) => p.mode != crate::dsp::PanMode::Sine,
            _ => false,
        }
    }

    /// The stage's name and the parameters its memory grows with, for a refusal that says what
    /// to lower (`silence: min_piece_ms, min_silence_ms, keep_silence_ms`).
    pub fn memory_parameters(&self) -> String {
        let grows_with = match self {
            StageSpec::Silence(_) => ": min_piece_ms, min_silence_ms, keep_silence_ms",
            StageSpec::Reverb(_) | StageSpec::Normalize(_) | StageSpec::Pan8d(_) => {
                ": the sample rate and channels"
            }
            StageSpec::Limiter(_) => ": lookahead_ms, the sample rate and channels",
            StageSpec::Gain { .. } => "",
        };
        format!("{}{grows_with}", self.type_name())
    }

    /// True for a stage that needs an analysis pass over the whole input first (loudness or
    /// peak normalisation, an automatic silence threshold).
    pub fn wants_analysis(&self) -> bool {
        match self {
            StageSpec::Normalize(_) => true,
            StageSpec::Silence(p) => matches!(p.threshold_db, crate::dsp::Threshold::Auto(_)),
            _ => false,
        }
    }

    /// True for a stage that splits its input into pieces (each becomes its own output).
    pub fn splits(&self) -> bool {
        matches!(self, StageSpec::Silence(p) if p.action == SilenceAction::Split)
    }

    /// Builds the stage this spec describes (call [`StageSpec::validate`] first).
    pub fn build(&self, context: &BuildContext) -> Box<dyn Stage> {
        match self {
            StageSpec::Gain { gain_db } => Box::new(Gain::new(*gain_db)),
            StageSpec::Reverb(params) => Box::new(Reverb::new(params.clone())),
            StageSpec::Pan8d(params) => Box::new(Pan8d::new(params.clone())),
            StageSpec::Limiter(params) => Box::new(Limiter::new(params.clone())),
            StageSpec::Normalize(params) => Box::new(Normalize::new(params.clone())),
            StageSpec::Silence(params) => {
                let mut stage = Silence::new(params.clone());
                if let Some(bits) = context.source_bits {
                    stage.set_source_bits(bits);
                }
                Box::new(stage)
            }
        }
    }
}

/// Facts about the input that some stages need when they are built.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Bits per sample of the source, when the codec has one (pydub-parity silence detection
    /// measures levels on the source's integer scale).
    pub source_bits: Option<u32>,
}

/// A stage's [`ParamError`] with the stage's position added to the field path.
fn at(index: usize, error: ParamError) -> SpecError {
    SpecError::OutOfRange {
        field: format!("chain[{index}].{}", error.field),
        value: error.value,
        min: error.min,
        max: error.max,
    }
}

fn check_range(
    index: usize,
    field: &'static str,
    value: f64,
    (min, max): (f64, f64),
) -> Result<(), SpecError> {
    ParamError::check(field, value, min, max).map_err(|e| at(index, e))
}

/// A chain specification could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The JSON did not parse or did not match the vocabulary (unknown stage, unknown field …).
    #[error("invalid chain{}: {reason}", index.map(|i| format!(" at chain[{i}]")).unwrap_or_default())]
    Invalid {
        /// The stage index, when the error is inside one stage.
        index: Option<usize>,
        /// What serde or the validator said.
        reason: String,
    },
    /// A value is outside its allowed range.
    #[error("{field} = {} is out of range (allowed {min} ..= {max})", crate::dsp::short_number(*value))]
    OutOfRange {
        /// The field path, e.g. `chain[0].gain_db`.
        field: String,
        /// The rejected value.
        value: f64,
        /// Lowest allowed.
        min: f64,
        /// Highest allowed.
        max: f64,
    },
    /// No preset of this name.
    #[error("unknown preset {name:?} (known presets: {known})")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
}

/// Parses and validates a chain: a JSON array of stages, or an object `{"chain": [...]}`.
///
/// # Errors
/// Fails on malformed JSON, an unknown stage type or field, or an out-of-range value.
pub fn parse_chain(json: &str) -> Result<Vec<StageSpec>, SpecError> {
    if json.len() > MAX_CHAIN_JSON_BYTES {
        return Err(SpecError::Invalid {
            index: None,
            reason: format!("the chain JSON is {} bytes, larger than 1 MiB", json.len()),
        });
    }
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| SpecError::Invalid {
        index: None,
        reason: json_syntax_error(json, &e),
    })?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut map) => match map.remove("chain") {
            Some(serde_json::Value::Array(items)) if map.is_empty() => items,
            _ => {
                return Err(SpecError::Invalid {
                    index: None,
                    reason: "expected a JSON array of stages or an object {\"chain\": [...]}"
                        .into(),
                })
            }
        },
        _ => {
            return Err(SpecError::Invalid {
                index: None,
                reason: "expected a JSON array of stages".into(),
            })
        }
    };
    let mut stages = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let stage: StageSpec = match serde_json::from_value(item.clone()) {
            Ok(stage) => stage,
            Err(e) => {
                let reason = match culprit_field(&item) {
                    Some(field) => format!("{field}: {e}"),
                    None => e.to_string(),
                };
                return Err(SpecError::Invalid {
                    index: Some(index),
                    reason: cap_echo(&reason),
                });
            }
        };
        stage.validate(index)?;
        stages.push(stage);
    }
    check_chain(&stages)?;
    Ok(stages)
}

/// Longest text of the user's echoed back in an error, in characters.
const MAX_ECHO: usize = 200;

/// `text` cut to 200 characters (with "…") and on one line: a 100 MB stage name is not echoed
/// whole, and a newline inside a JSON key does not forge a second log line. Every error that
/// quotes user input (here, on the command line and in the worker's messages) goes through it
/// or through [`cap_echo_at`].
pub fn cap_echo(text: &str) -> String {
    cap_echo_at(text, MAX_ECHO)
}

/// [`cap_echo`] with its own length: at most `max_chars` characters of `text` (then "…"), with
/// every control character written as its Rust escape (`\n`, `\u{1b}`).
pub fn cap_echo_at(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 8));
    for (n, c) in text.chars().enumerate() {
        if n == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON syntax error with the text around it, so the field is named even for tokens JSON
/// does not have (`NaN`, `Infinity`) or numbers beyond f64 (`1e309`).
fn json_syntax_error(json: &str, error: &serde_json::Error) -> String {
    let offset: usize = json
        .split_inclusive('\n')
        .take(error.line().saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + error.column().saturating_sub(1);
    let start = json.floor_char_boundary(offset.saturating_sub(24));
    let end = json.ceil_char_boundary((offset + 8).min(json.len()));
    let near = json.get(start..end).unwrap_or_default().replace('\n', " ");
    let hint = if near.contains("NaN") || near.contains("Infinity") {
        " (NaN and Infinity are not JSON numbers)"
    } else {
        ""
    };
    cap_echo(&format!("{error}, near `{near}`{hint}"))
}

/// For a stage object that failed to deserialise without naming a field (a wrong type), the
/// field that fails alone: each field is tried with the stage's `type` only.
fn culprit_field(item: &serde_json::Value) -> Option<String> {
    let object = item.as_object()?;
    let kind = object.get("type")?;
    object
        .iter()
        .filter(|(key, _)| key.as_str() != "type")
        .find(|(key, value)| {
            let probe = serde_json::json!({ "type": kind, key.as_str(): value });
            serde_json::from_value::<StageSpec>(probe)
                .is_err_and(|e| !e.to_string().starts_with("missing field"))
        })
        .map(|(key, _)| cap_echo(key))
}

/// Rules about the chain as a whole: at most one splitting stage (one set of pieces), and it must
/// come first or after stages without latency or tail, so that its piece boundaries map onto the
/// source exactly and nothing a stage flushes at the end is lost.
///
/// # Errors
/// [`SpecError::Invalid`] naming the offending stage.
pub fn check_chain(stages: &[StageSpec]) -> Result<(), SpecError> {
    if stages.len() > MAX_STAGES {
        return Err(SpecError::Invalid {
            index: None,
            reason: format!(
                "a chain has at most {MAX_STAGES} stages; this one has {}",
                stages.len()
            ),
        });
    }
    if let Some((index, _)) = stages
        .iter()
        .enumerate()
        .filter(|(_, stage)| stage.wants_analysis())
        .nth(MAX_ANALYSIS_PASSES)
    {
        return Err(SpecError::Invalid {
            index: Some(index),
            reason: format!(
                "a chain has at most {MAX_ANALYSIS_PASSES} analysis passes (normalize, silence \
                 with threshold_db \"auto\"), each decoding the whole input once more"
            ),
        });
    }
    let mut seen_split = false;
    for (index, stage) in stages.iter().enumerate() {
        let is_cutting =
            matches!(stage, StageSpec::Silence(p) if p.action != SilenceAction::Detect);
        if stage.splits() {
            if seen_split {
                return Err(SpecError::Invalid {
                    index: Some(index),
                    reason: "only one silence stage with action \"split\" is allowed".into(),
                });
            }
            seen_split = true;
        }
        if is_cutting {
            if let Some(before) = stages[..index].iter().position(StageSpec::delays_or_rings) {
                return Err(SpecError::Invalid {
                    index: Some(index),
                    reason: format!(
                        "a silence split/trim must come before chain[{before}] ({}), which \
                         delays the signal or adds a tail",
                        stages[before].type_name()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A named job: a chain and, optionally, the output format it implies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preset {
    /// The preset's name.
    pub name: &'static str,
    /// Its stages.
    pub chain: Vec<StageSpec>,
    /// The output format it prescribes, if any (otherwise the input's format family).
    pub format: Option<OutputFormat>,
}

/// Names of the presets [`preset`] knows.
pub const PRESET_NAMES: &[&str] = &["8d", "oneshot", "transcode"];

/// What a preset does, in one line (`--help`), or `None` for an unknown name.
pub fn preset_summary(name: &str) -> Option<&'static str> {
    match name {
        "8d" => Some("8D audio: circular pan, reverb, -2 dBTP limiter, MP3 192 kbps"),
        "oneshot" => Some(
            "pydub's split_on_silence (750 ms under -30 dBFS, 50 ms kept): one output per piece",
        ),
        "transcode" => Some("no stage: decode and re-encode to the output's format"),
        _ => None,
    }
}

/// Looks up a preset by name.
///
/// # Errors
/// [`SpecError::UnknownPreset`] listing the known names.
pub fn preset(name: &str) -> Result<Preset, SpecError> {
    match name {
        // The 8D job people run today: sin(2πt/8) pan → Reverb(0.5) → Gain(0) → Limiter(−2 dB)
        // → MP3 192k. The limiter is our true-peak one (a real −2 dBTP ceiling) rather than
        // pedalboard's, which is a 4:1 compressor with +5.75 dB makeup (dsp-reference §3.2).
        "8d" => Ok(Preset {
            name: "8d",
            chain: vec![
                StageSpec::Pan8d(Pan8dParams::default()),
                StageSpec::Reverb(ReverbParams {
                    room_size: 0.5,
                    ..ReverbParams::default()
                }),
                StageSpec::Gain { gain_db: 0.0 },
                StageSpec::Limiter(LimiterParams {
                    threshold_db: -2.0,
                    ..LimiterParams::default()
                }),
            ],
            // 192 kbps where the input's rate allows it, the nearest allowed rate below 32 kHz.
            format: Some(OutputFormat::Mp3 {
                rate: crate::encode::Mp3Rate::CbrPreferred { kbps: 192 },
            }),
        }),
        // The one-shot job people run today: pydub `split_on_silence(750, -30, keep 50)`, exact,
        // each piece in the input's format family.
        "oneshot" => Ok(Preset {
            name: "oneshot",
            chain: vec![StageSpec::Silence(SilenceParams {
                mode: SilenceMode::Pydub,
                threshold_db: Threshold::Db(-30.0),
                min_silence_ms: 750.0,
                keep_silence_ms: crate::dsp::KeepSilence::Ms(50.0),
                action: SilenceAction::Split,
                ..SilenceParams::default()
            })],
            format: None,
        }),
        "transcode" => Ok(Preset {
            name: "transcode",
            chain: Vec::new(),
            format: None,
        }),
        _ => Err(SpecError::UnknownPreset {
            name: name.to_string(),
            known: PRESET_NAMES.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_array_and_fills_defaults() {
        let chain = parse_chain(r#"[{"type":"gain","gain_db":-3.5},{"type":"gain"}]"#)
            .expect("valid chain");
        assert_eq!(
            chain,
            vec![
                StageSpec::Gain { gain_db: -3.5 },
                StageSpec::Gain { gain_db: 0.0 }
            ]
        );
        let json = serde_json::to_string(&chain[1]).expect("serialise");
        assert_eq!(json, r#"{"type":"gain","gain_db":0.0}"#);
    }

    #[test]
    fn rejects_unknown_stage_and_field() {
        let err = parse_chain(r#"[{"type":"chorus"}]"#).expect_err("unknown stage");
        assert!(err.to_string().contains("chain[0]"), "{err}");
        assert!(err.to_string().contains("chorus"), "{err}");
        let err = parse_chain(r#"[{"type":"gain","gain":1}]"#).expect_err("unknown field");
        assert!(err.to_string().contains("gain"), "{err}");
    }

    #[test]
    fn rejects_out_of_range_with_field_and_range() {
        let err = parse_chain(r#"{"chain":[{"type":"gain","gain_db":400}]}"#).expect_err("range");
        let text = err.to_string();
        assert!(text.contains("chain[0].gain_db = 400"), "{text}");
        assert!(text.contains("-120"), "{text}");
    }

    #[test]
    fn every_preset_is_described() {
        for name in PRESET_NAMES {
            assert!(
                preset(name).is_ok() && preset_summary(name).is_some(),
                "{name}"
            );
        }
        assert_eq!(preset_summary("9d"), None);
    }

    #[test]
    fn unknown_preset_lists_known_ones() {
        let err = preset("nope").expect_err("unknown");
        assert!(err.to_string().contains("transcode"), "{err}");
    }
}
