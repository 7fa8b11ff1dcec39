//! A model defined by a Hugging Face `config.json` the user has (`[model] hf_config`).
//!
//! Read fields: `hidden_size`, `intermediate_size`, `num_hidden_layers`,
//! `num_attention_heads`, `num_key_value_heads` (default: the heads), `head_dim`
//! (default hidden / heads), `vocab_size`; MoE: `n_routed_experts`, `num_local_experts`
//! or `num_experts`, `num_experts_per_tok`, `moe_intermediate_size` (default
//! `intermediate_size`, as Mixtral), `n_shared_experts` or
//! `shared_expert_intermediate_size`, `first_k_dense_replace`; latent attention:
//! `kv_lora_rank`, `q_lora_rank`, `qk_rope_head_dim`, `qk_nope_head_dim`, `v_head_dim`;
//! `num_nextn_predict_layers` (MTP modules); sliding windows: `sliding_window`,
//! `use_sliding_window`, `layer_types`, `sliding_window_pattern`; element type:
//! `quantization_config.quant_method` ("fp8", "mxfp4"), else `torch_dtype` / `dtype`
//! (not read when the scenario sets `model.dtype`). A
//! multimodal config's `text_config` is read in its place. Fields that change neither
//! cost nor memory (rope, norm epsilons, token ids) are ignored. A field whose value
//! clustersim cannot represent (a layer type other than full or sliding attention, MoE
//! on only some layers other than leading dense ones) is an error naming the file and
//! the field, never a silent approximation.

use crate::error::InputError;
use crate::model::mla::Mla;
use crate::model::spec::{Dtype, ModelSpec};
use crate::model::window::SlidingWindow;
use serde_json::{Map, Value};
use std::path::Path;

type Obj = Map<String, Value>;

/// Reads `path` into a model spec named after the file's folder (or "hf-config").
/// With `dtype_given` (the scenario sets `model.dtype`) the file's element type is not
/// read, so a quantization clustersim cannot represent can be overridden.
pub fn read_hf_config(path: &Path, dtype_given: bool) -> Result<ModelSpec, InputError> {
    let text = crate::textfile::read_text(path, "Hugging Face config.json")?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| InputError::line(path, e.line(), format!("is not valid JSON: {e}")))?;
    let Value::Object(top) = doc else {
        return Err(InputError::file(path, "must hold a JSON object (a Hugging Face config.json)"));
    };
    let cfg = match top.get("text_config") {
        Some(Value::Object(t)) if !top.contains_key("hidden_size") => t,
        _ => &top,
    };
    let name =
        path.parent().and_then(|p| p.file_name()).map_or("hf-config".to_string(), |n| n.to_string_lossy().into_owned());
    Reader { path, cfg, dtype_given }.spec(name)
}

struct Reader<'a> {
    path: &'a Path,
    cfg: &'a Obj,
    dtype_given: bool,
}

impl Reader<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> InputError {
        InputError::key(self.path, field, msg)
    }

    /// A non-negative integer field, if present and not null.
    fn count(&self, field: &str) -> Result<Option<u32>, InputError> {
        match self.cfg.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= u32::MAX as u64)
                .map(|n| Some(n as u32))
                .ok_or_else(|| self.err(field, format!("is {v}; expected a whole number from 0 to {}", u32::MAX))),
        }
    }

    fn required(&self, field: &str) -> Result<u32, InputError> {
        match self.count(field)? {
            Some(n) if n > 0 => Ok(n),
            Some(_) => Err(self.err(field, "is 0; must be at least 1")),
            None => Err(self.err(field, "is missing; clustersim needs it to size the model")),
        }
    }

    fn first_count(&self, fields: &[&str]) -> Result<Option<u32>, InputError> {
        for f in fields {
            if let Some(n) = self.count(f)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    fn spec(&self, name: String) -> Result<ModelSpec, InputError> {
        let hidden = self.required("hidden_size")?;
        let heads = self.required("num_attention_heads")?;
        let ffn = self.required("intermediate_size")?;
        let mla = self.mla()?;
        let head_dim = match (&mla, self.count("head_dim")?) {
            (Some(m), _) => m.qk_nope_head_dim + m.qk_rope_head_dim,
            (None, Some(d)) => d,
            (None, None) => hidden / heads,
        };
        let experts = self.first_count(&["n_routed_experts", "num_local_experts", "num_experts"])?.unwrap_or(0);
        let expert_ffn = self.count("moe_intermediate_size")?.unwrap_or(ffn);
        let mut spec = ModelSpec {
            name,
            layers: self.required("num_hidden_layers")?,
            hidden,
            heads,
            kv_heads: self.count("num_key_value_heads")?.unwrap_or(heads),
            head_dim,
            ffn,
            gated_mlp: true,
            experts,
            top_k: if experts > 0 { self.required("num_experts_per_tok")? } else { 0 },
            shared_experts: if experts > 0 { self.shared_experts(expert_ffn)? } else { 0 },
            expert_ffn,
            dense_layers: self.count("first_k_dense_replace")?.unwrap_or(0),
            vocab: self.required("vocab_size")?,
            dtype: self.dtype()?,
            mla,
            sliding_window: None,
            mtp_layers: self.count("num_nextn_predict_layers")?.unwrap_or(0),
            speculative: None,
        };
        if experts > 0 {
            self.moe_on_every_layer()?;
        }
        spec.sliding_window = self.sliding_window(spec.layers)?;
        Ok(spec)
    }

    /// Latent attention when `kv_lora_rank` is given (its other widths then required).
    fn mla(&self) -> Result<Option<Mla>, InputError> {
        let Some(r) = self.count("kv_lora_rank")? else { return Ok(None) };
        Ok(Some(Mla {
            q_lora_rank: self.count("q_lora_rank")?.unwrap_or(0),
            kv_lora_rank: r,
            qk_nope_head_dim: self.required("qk_nope_head_dim")?,
            qk_rope_head_dim: self.count("qk_rope_head_dim")?.unwrap_or(0),
            v_head_dim: self.required("v_head_dim")?,
        }))
    }

    /// Shared experts: `n_shared_experts`, or one `shared_expert_intermediate_size`
    /// wide MLP expressed as whole experts of `expert_ffn`.
    fn shared_experts(&self, expert_ffn: u32) -> Result<u32, InputError> {
        if let Some(n) = self.count("n_shared_experts")? {
            return Ok(n);
        }
        match self.count("shared_expert_intermediate_size")? {
            None | Some(0) => Ok(0),
            Some(w) if w % expert_ffn == 0 => Ok(w / expert_ffn),
            Some(w) => Err(self.err(
                "shared_expert_intermediate_size",
                format!("is {w}, not a multiple of the expert FFN {expert_ffn}; clustersim models shared experts as whole experts"),
            )),
        }
    }

    /// MoE must cover every layer after the leading dense ones.
    fn moe_on_every_layer(&self) -> Result<(), InputError> {
        for field in ["decoder_sparse_step", "moe_layer_freq"] {
            if let Some(n) = self.count(field)? {
                if n > 1 {
                    return Err(self.err(
                        field,
                        format!(
                            "is {n}; clustersim models MoE on every layer after `first_k_dense_replace` (a step of 1)"
                        ),
                    ));
                }
            }
        }
        match self.cfg.get("mlp_only_layers") {
            Some(Value::Array(a)) if !a.is_empty() => Err(self.err(
                "mlp_only_layers",
                "lists dense layers among MoE ones; clustersim models only leading dense layers (first_k_dense_replace)",
            )),
            _ => Ok(()),
        }
    }

    fn dtype(&self) -> Result<Dtype, InputError> {
        if self.dtype_given {
            return Ok(Dtype::Bf16);
        }
        let quant = self.cfg.get("quantization_config").and_then(|q| q.get("quant_method")).and_then(Value::as_str);
        match quant {
            Some("fp8") => return Ok(Dtype::Fp8),
            Some("mxfp4") | Some("nvfp4") => return Ok(Dtype::Fp4),
            Some(other) => {
                return Err(self.err(
                    "quantization_config.quant_method",
                    format!("is {other:?}; clustersim models fp8 and mxfp4/nvfp4 weights: set `model.dtype` in the scenario to choose one"),
                ))
            }
            None => {}
        }
        for field in ["torch_dtype", "dtype"] {
            match self.cfg.get(field).and_then(Value::as_str) {
                Some("bfloat16") => return Ok(Dtype::Bf16),
                Some("float16") => return Ok(Dtype::Fp16),
                Some(other) => {
                    return Err(self.err(
                        field,
                        format!("is {other:?}; clustersim serves bfloat16, float16, fp8 or fp4: set `model.dtype` in the scenario to override"),
                    ))
                }
                None => {}
            }
        }
        Ok(Dtype::Bf16)
    }

    /// The window and which layers use it: `layer_types` (a periodic pattern ending in
    /// a full layer, or all sliding), else `sliding_window_pattern`, else every layer.
    fn sliding_window(&self, layers: u32) -> Result<Option<SlidingWindow>, InputError> {
        let Some(w) = self.count("sliding_window")? else { return Ok(None) };
        if self.cfg.get("use_sliding_window") == Some(&Value::Bool(false)) || w == 0 {
            return Ok(None);
        }
        let full_every = match self.cfg.get("layer_types") {
            Some(Value::Array(types)) => match self.full_every_from_types(types, layers)? {
                None => return Ok(None),
                Some(n) => n,
            },
            _ => self.count("sliding_window_pattern")?.unwrap_or(0),
        };
        Ok(Some(SlidingWindow { window_tokens: w, full_every }))
    }

    /// `Some(n)`: every n-th layer full (0: none); `None`: every layer full.
    fn full_every_from_types(&self, types: &[Value], layers: u32) -> Result<Option<u32>, InputError> {
        let mut full = Vec::with_capacity(types.len());
        for (i, t) in types.iter().enumerate() {
            match t.as_str() {
                Some("full_attention") => full.push(true),
                Some("sliding_attention") => full.push(false),
                _ => {
                    return Err(self.err(
                        "layer_types",
                        format!(
                            "entry {i} is {t}; clustersim models \"full_attention\" and \"sliding_attention\" layers"
                        ),
                    ))
                }
            }
        }
        if full.len() != layers as usize {
            return Err(self.err("layer_types", format!("lists {} layers; num_hidden_layers is {layers}", full.len())));
        }
        if full.iter().all(|f| *f) {
            return Ok(None);
        }
        let Some(first_full) = full.iter().position(|f| *f) else { return Ok(Some(0)) };
        let n = first_full as u32 + 1;
        if full.iter().enumerate().all(|(l, f)| *f == ((l as u32 + 1) % n == 0)) {
            return Ok(Some(n));
        }
        Err(self.err(
            "layer_types",
            "is not a repeating pattern of sliding layers each followed by one full layer; clustersim models every n-th layer full",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<ModelSpec, InputError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).expect("write");
        read_hf_config(&path, false)
    }

    #[test]
    fn a_multimodal_text_config_and_a_wide_shared_expert() {
        // Qwen2-MoE style: one shared expert of 5,632 = 4 experts of 1,408; inside a
        // multimodal config's text_config.
        let spec = read(
            r#"{"text_config": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16,
                "intermediate_size": 5632, "vocab_size": 151936, "num_experts": 60, "num_experts_per_tok": 4,
                "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632}}"#,
        )
        .expect("reads");
        assert_eq!((spec.experts, spec.top_k, spec.expert_ffn, spec.shared_experts), (60, 4, 1408, 4));
        assert_eq!((spec.kv_heads, spec.head_dim), (16, 128));
    }

    #[test]
    fn unmappable_values_are_named() {
        let base = r#""hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100"#;
        let err = read(&format!(r#"{{{base}, "num_experts": 8, "num_experts_per_tok": 2, "decoder_sparse_step": 2}}"#))
            .expect_err("MoE on every other layer");
        assert!(err.to_string().contains("decoder_sparse_step"), "{err}");
        let err = read(&format!(r#"{{{base}, "quantization_config": {{"quant_method": "awq"}}}}"#)).expect_err("int4");
        assert!(
            err.to_string().contains("quantization_config.quant_method") && err.to_string().contains("awq"),
            "{err}"
        );
        let err = read(&format!(r#"{{{base}, "num_key_value_heads": -1}}"#)).expect_err("negative");
        assert!(err.to_string().contains("num_key_value_heads"), "{err}");
        let err = read("[1, 2]").expect_err("not an object");
        assert!(err.to_string().contains("JSON object"), "{err}");
    }
}
