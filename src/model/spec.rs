//! Model architecture descriptions and presets.
//!
//! Dense and mixture-of-experts decoder-only transformers, with the attention variants
//! served models use: grouped-query, multi-head latent (`model::mla`), sliding-window
//! layers (`model::window`), and multi-token-prediction drafts for speculative decoding
//! (`model::speculative`). Preset numbers come from the models' published configs
//! (`shared/data/reference/model_archs.csv`).

use crate::model::mla::Mla;
use crate::model::speculative::Speculative;
use crate::model::window::SlidingWindow;
use serde::{Deserialize, Serialize};

/// Element type of weights, activations and KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// bfloat16, 2 bytes.
    Bf16,
    /// float16, 2 bytes.
    Fp16,
    /// 8-bit float, 1 byte.
    Fp8,
    /// 4-bit float (NVFP4 / MXFP4 weights and activations), half a byte per element; its
    /// per-block scales (one byte per 16 or 32 elements) are not counted. GEMMs run at
    /// the FP4 tensor-core rate where the GPU has one (Blackwell), else at the FP8 rate.
    Fp4,
}

impl Dtype {
    /// Bytes per element.
    pub fn bytes(self) -> f64 {
        match self {
            Dtype::Bf16 | Dtype::Fp16 => 2.0,
            Dtype::Fp8 => 1.0,
            Dtype::Fp4 => 0.5,
        }
    }
}

/// A transformer's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Preset or user-given name.
    pub name: String,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size h.
    pub hidden: u32,
    /// Query heads a.
    pub heads: u32,
    /// Key/value heads k (GQA when < heads).
    pub kv_heads: u32,
    /// Head dimension d.
    pub head_dim: u32,
    /// Dense FFN intermediate size f (used by dense layers).
    pub ffn: u32,
    /// Gated (SwiGLU, three matrices) or plain (two matrices) MLP.
    pub gated_mlp: bool,
    /// Routed experts per MoE layer (0 = dense model).
    pub experts: u32,
    /// Experts each token is routed to.
    pub top_k: u32,
    /// Shared experts every token passes through.
    pub shared_experts: u32,
    /// Intermediate size of one expert's FFN.
    pub expert_ffn: u32,
    /// Leading layers that are dense even in an MoE model.
    pub dense_layers: u32,
    /// Vocabulary size V.
    pub vocab: u32,
    /// Element type.
    pub dtype: Dtype,
    /// Multi-head latent attention (DeepSeek-V2/V3): when set, it replaces `kv_heads`
    /// and `head_dim` for the KV cache, the attention kernels and the projections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla: Option<Mla>,
    /// Sliding-window attention on some or all layers (None: every layer attends to
    /// the whole context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<SlidingWindow>,
    /// Multi-token-prediction modules shipped with the model (DeepSeek-V3: 1), each one
    /// extra transformer layer; loaded and run only when `speculative` is set.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtp_layers: u32,
    /// Speculative decoding with the MTP modules as the draft (None: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculative: Option<Speculative>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ModelSpec {
    /// True when the model has routed experts.
    pub fn is_moe(&self) -> bool {
        self.experts > 0
    }
    /// Draft layers the server loads and runs: the MTP modules when speculative
    /// decoding is on, else none.
    pub fn draft_layers(&self) -> u32 {
        if self.speculative.is_some() {
            self.mtp_layers
        } else {
            0
        }
    }
    /// Tokens drafted per decode step (0 without speculative decoding).
    pub fn draft_tokens(&self) -> u32 {
        self.speculative.map_or(0, |s| s.draft_tokens)
    }
}

/// A named model preset with its source.
pub struct ModelPreset {
    /// Name used in scenarios (`model.preset`).
    pub name: &'static str,
    /// Builds the spec (dtype bf16; the scenario may change it).
    pub spec: fn() -> ModelSpec,
    /// Where the numbers come from.
    pub source: &'static str,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn dense(name: &str, layers: u32, hidden: u32, heads: u32, kv: u32, ffn: u32, vocab: u32) -> ModelSpec {
    ModelSpec {
        name: name.to_string(),
        layers,
        hidden,
        heads,
        kv_heads: kv,
        head_dim: hidden / heads,
        ffn,
        gated_mlp: true,
        experts: 0,
        top_k: 0,
        shared_experts: 0,
        expert_ffn: 0,
        dense_layers: 0,
        vocab,
        dtype: Dtype::Bf16,
        mla: None,
        sliding_window: None,
        mtp_layers: 0,
        speculative: None,
    }
}

/// Every model preset.
pub const MODEL_PRESETS: &[ModelPreset] = &[
    ModelPreset {
        name: "llama-2-70b",
        spec: || dense("llama-2-70b", 80, 8192, 64, 8, 28672, 32000),
        source: "Llama-2-70B config: 80 layers, hidden 8192, 64 q / 8 kv heads of 128, SwiGLU FFN 28672, vocab 32000",
    },
    ModelPreset {
        name: "llama-3-8b",
        spec: || dense("llama-3-8b", 32, 4096, 32, 8, 14336, 128256),
        source: "Llama-3-8B config: 32 layers, hidden 4096, 32 q / 8 kv heads of 128, SwiGLU FFN 14336, vocab 128256",
    },
    ModelPreset {
        name: "llama-3-70b",
        spec: || dense("llama-3-70b", 80, 8192, 64, 8, 28672, 128256),
        source: "Llama-3-70B config: 80 layers, hidden 8192, 64 q / 8 kv heads of 128, SwiGLU FFN 28672, vocab 128256",
    },
    ModelPreset {
        name: "llama-3.1-405b",
        spec: || dense("llama-3.1-405b", 126, 16384, 128, 8, 53248, 128256),
        source: "Llama-3.1-405B config: 126 layers, hidden 16384, 128 q / 8 kv heads of 128, SwiGLU FFN 53248, vocab 128256",
    },
    ModelPreset {
        name: "deepseek-v3",
        spec: crate::model::mla::deepseek_v3,
        source: "deepseek-ai/DeepSeek-V3 config.json (and inference/configs/config_671B.json): 61 layers, the first 3 \
                 dense (first_k_dense_replace 3, intermediate 18432), hidden 7168, 128 heads with MLA (q_lora_rank \
                 1536, kv_lora_rank 512, qk_nope 128 + qk_rope 64, v 128), 256 routed experts of FFN 2048 + 1 \
                 shared, top-8, vocab 129280, num_nextn_predict_layers 1 (one MTP module); DeepSeek-V3 \
                 technical report arXiv:2412.19437 Sections 2.1-2.2 and 4.2",
    },
    ModelPreset {
        name: "qwen3-235b-a22b",
        // head_dim is 128 though hidden / heads = 64 (Qwen3 sets it explicitly).
        spec: || ModelSpec {
            head_dim: 128,
            experts: 128,
            top_k: 8,
            expert_ffn: 1536,
            ..dense("qwen3-235b-a22b", 94, 4096, 64, 4, 12288, 151936)
        },
        source: "Qwen/Qwen3-235B-A22B config.json: 94 layers, hidden 4096, 64 q / 4 kv heads of 128 (head_dim 128), \
                 128 SwiGLU experts of FFN 1536 (moe_intermediate_size), top-8, no shared expert, every layer MoE \
                 (decoder_sparse_step 1, mlp_only_layers []), vocab 151936; the same shapes in THUDM/slime \
                 scripts/models/qwen3-235B-A22B.sh",
    },
    ModelPreset {
        name: "mixtral-8x7b",
        spec: || ModelSpec {
            experts: 8,
            top_k: 2,
            expert_ffn: 14336,
            ..dense("mixtral-8x7b", 32, 4096, 32, 8, 14336, 32000)
        },
        source: "Mixtral-8x7B config: 32 layers, hidden 4096, 32 q / 8 kv heads of 128, 8 SwiGLU experts of FFN 14336, top-2, vocab 32000",
    },
    ModelPreset {
        name: "seed-moe",
        // The MoE of the deployment report this project started from. Layers, hidden,
        // heads, experts and expert FFN are the report's; top-k = 2 and vocab = 32000
        // are assumptions (the report does not state them).
        spec: || ModelSpec {
            kv_heads: 32,
            gated_mlp: false,
            experts: 64,
            top_k: 2,
            expert_ffn: 16384,
            ..dense("seed-moe", 16, 4096, 32, 32, 16384, 32000)
        },
        source: "deployment report: 16 layers, hidden 4096, 32 heads of 128 (full MHA), 64 plain-MLP experts of FFN 16384; top-2 and vocab 32000 assumed",
    },
];

/// Looks up a model preset by name.
pub fn model_preset(name: &str) -> Option<&'static ModelPreset> {
    MODEL_PRESETS.iter().find(|p| p.name == name)
}

/// The preset names, for error messages.
pub fn model_preset_names() -> Vec<&'static str> {
    MODEL_PRESETS.iter().map(|p| p.name).collect()
}
