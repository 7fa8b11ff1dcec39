//! `[search]`: the space `clustersim plan` searches, as written in a scenario or in a
//! separate file given with `--space`. Every key is optional; an absent key takes the
//! default `analysis::plan::space` derives from the model and hardware.

use super::types::RouterKind;
use serde::{Deserialize, Serialize};

/// `[search]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// GPU presets to try (default: the scenario's GPU).
    pub gpus: Option<Vec<String>>,
    /// Node counts allowed (default: any up to `max_gpus`).
    pub nodes: Option<Vec<u32>>,
    /// Most GPUs a plan may use (default: twice the scenario's cluster).
    pub max_gpus: Option<u32>,
    /// Data-parallel degrees (default 1, 2, 3, ... up to `max_gpus`).
    pub dp: Option<Vec<u32>>,
    /// Pipeline degrees (default: powers of two up to 8 that divide the layers).
    pub pp: Option<Vec<u32>>,
    /// Tensor-parallel degrees (default: powers of two up to a node that divide the heads).
    pub tp: Option<Vec<u32>>,
    /// Expert-parallel degrees (default: 1 for dense models; powers of two up to a
    /// node that divide the experts for MoE).
    pub ep: Option<Vec<u32>>,
    /// `serving.max_batch_tokens` values (default: the scenario's).
    pub max_batch_tokens: Option<Vec<u32>>,
    /// `serving.max_seqs` values (default: the scenario's).
    pub max_seqs: Option<Vec<u32>>,
    /// `serving.chunk_tokens` values (default: the scenario's).
    pub chunk_tokens: Option<Vec<u32>>,
    /// Routers (default: the scenario's).
    pub router: Option<Vec<RouterKind>>,
    /// Also find each winning plan's goodput: the highest Poisson arrival rate at
    /// which it meets the latency requirements (default false).
    pub goodput: Option<bool>,
}

/// A `--space` file: a `[search]` table and nothing else.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceFile {
    /// The space.
    pub search: SearchConfig,
}
