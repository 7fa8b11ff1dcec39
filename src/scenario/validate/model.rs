//! `[model]`: a preset, a Hugging Face config.json, or every dimension given, then
//! overrides, then the checks that make the shapes consistent (heads over KV heads,
//! experts and top-k, latent widths, window, speculative decoding).

use super::Checker;
use crate::error::InputError;
use crate::model::hf_config::read_hf_config;
use crate::model::spec::{model_preset, model_preset_names, Dtype, ModelSpec};
use crate::scenario::types::ModelConfig;
use std::path::Path;

/// The model: the named preset or a custom one, with the `[model]` fields applied and checked.
pub(super) fn resolve_model(c: &Checker, m: &ModelConfig) -> Result<ModelSpec, InputError> {
    let mut spec = base_model(c, m)?;
    macro_rules! over {
        ($($f:ident),*) => { $( if let Some(v) = m.$f { spec.$f = v; } )* };
    }
    over!(
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim,
        ffn,
        gated_mlp,
        experts,
        top_k,
        shared_experts,
        expert_ffn,
        dense_layers,
        vocab,
        dtype
    );
    if let Some(mla) = m.mla {
        spec.mla = Some(mla);
    }
    if let Some(w) = m.sliding_window {
        spec.sliding_window = Some(w);
    }
    if let Some(n) = m.mtp_layers {
        spec.mtp_layers = n;
    }
    // draft_tokens = 0 turns speculation off (handy in sweeps and --set).
    spec.speculative = m.speculative.filter(|s| s.draft_tokens > 0);
    check_model(c, &spec)?;
    check_features(c, &spec)?;
    Ok(spec)
}

/// The preset named by `model.preset`, or without one a dense custom model whose
/// layers, hidden, heads, ffn and vocab must all be given.
fn base_model(c: &Checker, m: &ModelConfig) -> Result<ModelSpec, InputError> {
    if let Some(file) = &m.hf_config {
        if m.preset.is_some() {
            return Err(c.err("model.hf_config", "is given together with model.preset; give one of them"));
        }
        let path = c.file.parent().unwrap_or(Path::new(".")).join(file);
        if !path.is_file() {
            return Err(c.err(
                "model.hf_config",
                format!("file {} does not exist (paths are relative to the scenario file's folder)", path.display()),
            ));
        }
        return read_hf_config(&path, m.dtype.is_some());
    }
    if let Some(name) = &m.preset {
        let p = model_preset(name).ok_or_else(|| {
            c.err("model.preset", format!("unknown model preset {name:?}; known: {}", model_preset_names().join(", ")))
        })?;
        return Ok((p.spec)());
    }
    let need = |v: Option<u32>, k: &str| {
        v.ok_or_else(|| {
            c.err(
                &format!("model.{k}"),
                format!(
                    "is missing; without `model.preset` give layers, hidden, heads, ffn and vocab (presets: {})",
                    model_preset_names().join(", ")
                ),
            )
        })
    };
    let hidden = need(m.hidden, "hidden")?;
    let heads = need(m.heads, "heads")?;
    let ffn = need(m.ffn, "ffn")?;
    Ok(ModelSpec {
        name: "custom".into(),
        layers: need(m.layers, "layers")?,
        hidden,
        heads,
        kv_heads: heads,
        head_dim: hidden.checked_div(heads).unwrap_or(0),
        ffn,
        gated_mlp: true,
        experts: 0,
        top_k: 0,
        shared_experts: 0,
        expert_ffn: ffn,
        dense_layers: 0,
        vocab: need(m.vocab, "vocab")?,
        dtype: Dtype::Bf16,
        mla: None,
        sliding_window: None,
        mtp_layers: 0,
        speculative: None,
    })
}

/// Latent widths, window and speculative decoding make sense.
fn check_features(c: &Checker, spec: &ModelSpec) -> Result<(), InputError> {
    if let Some(m) = &spec.mla {
        c.at_least_one("model.mla.kv_lora_rank", m.kv_lora_rank)?;
        c.at_least_one("model.mla.qk_nope_head_dim", m.qk_nope_head_dim)?;
        c.at_least_one("model.mla.v_head_dim", m.v_head_dim)?;
    }
    if let Some(w) = &spec.sliding_window {
        c.at_least_one("model.sliding_window.window_tokens", w.window_tokens)?;
    }
    let Some(s) = &spec.speculative else { return Ok(()) };
    if s.draft_tokens > MAX_DRAFT_TOKENS {
        return Err(c.err(
            "model.speculative.draft_tokens",
            format!("is {}; must be from 0 (off) to {MAX_DRAFT_TOKENS}", s.draft_tokens),
        ));
    }
    if !(s.acceptance_rate.is_finite() && (0.0..=1.0).contains(&s.acceptance_rate)) {
        return Err(c.err(
            "model.speculative.acceptance_rate",
            format!("is {}; must be a probability in [0, 1]", s.acceptance_rate),
        ));
    }
    if spec.mtp_layers == 0 {
        return Err(c.err(
            "model.speculative",
            "needs a draft: the model has no multi-token-prediction module; set model.mtp_layers \
             (1 for DeepSeek-V3's MTP module or a one-layer EAGLE-style head)",
        ));
    }
    Ok(())
}

/// Most draft tokens per step: engines draft a handful (SGLang's EAGLE/MTP defaults
/// are 1-4 steps); the cap keeps query tokens per sequence small and in range.
const MAX_DRAFT_TOKENS: u32 = 16;

/// Every dimension is at least 1 and the MoE fields agree with `experts`.
fn check_model(c: &Checker, spec: &ModelSpec) -> Result<(), InputError> {
    for (k, v) in [
        ("model.layers", spec.layers),
        ("model.hidden", spec.hidden),
        ("model.heads", spec.heads),
        ("model.kv_heads", spec.kv_heads),
        ("model.head_dim", spec.head_dim),
        ("model.ffn", spec.ffn),
        ("model.vocab", spec.vocab),
    ] {
        c.at_least_one(k, v)?;
    }
    if spec.heads % spec.kv_heads != 0 {
        return Err(c.err(
            "model.kv_heads",
            format!(
                "is {}; must divide heads ({}) so query heads group evenly over KV heads",
                spec.kv_heads, spec.heads
            ),
        ));
    }
    if spec.experts > 0 {
        if spec.top_k == 0 || spec.top_k > spec.experts {
            return Err(c.err(
                "model.top_k",
                format!("is {}; must be in 1..={} (the number of experts)", spec.top_k, spec.experts),
            ));
        }
        c.at_least_one("model.expert_ffn", spec.expert_ffn)?;
        if spec.dense_layers > spec.layers {
            return Err(c.err(
                "model.dense_layers",
                format!("is {}; must be at most layers ({})", spec.dense_layers, spec.layers),
            ));
        }
    } else if spec.top_k > 0 || spec.shared_experts > 0 {
        return Err(c.err(
            "model.experts",
            "is 0 (dense model) but top_k or shared_experts is set; give experts > 0 for an MoE model",
        ));
    }
    Ok(())
}
