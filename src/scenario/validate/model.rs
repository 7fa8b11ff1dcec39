//! `[model]`: a preset or every dimension given, then overrides, then the checks
//! that make the shapes consistent (heads over KV heads, experts and top-k).

use super::Checker;
use crate::error::InputError;
use crate::model::spec::{model_preset, model_preset_names, Dtype, ModelSpec};
use crate::scenario::types::ModelConfig;

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
    check_model(c, &spec)?;
    Ok(spec)
}

/// The preset named by `model.preset`, or without one a dense custom model whose
/// layers, hidden, heads, ffn and vocab must all be given.
fn base_model(c: &Checker, m: &ModelConfig) -> Result<ModelSpec, InputError> {
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
    })
}

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
