//! `[requirements]` and `[[events]]`: targets are positive, what-if events name
//! GPUs and nodes that exist and end after they start.

use super::Checker;
use crate::error::InputError;
use crate::scenario::types::{LinkClass, Requirements, WhatIfEvent};

/// Every target given is in range.
pub(super) fn check_requirements(c: &Checker, r: &Requirements) -> Result<(), InputError> {
    let pos = [
        ("requirements.throughput_tokens_per_ms_per_gpu", r.throughput_tokens_per_ms_per_gpu),
        ("requirements.ttft_p50_s", r.ttft_p50_s),
        ("requirements.ttft_p99_s", r.ttft_p99_s),
        ("requirements.tpot_p99_s", r.tpot_p99_s),
        ("requirements.overhead_fraction_max", r.overhead_fraction_max),
        ("requirements.load_imbalance_cv_max", r.load_imbalance_cv_max),
    ];
    for (k, v) in pos {
        if let Some(v) = v {
            c.positive(k, v)?;
        }
    }
    if let Some(v) = r.memory_fraction_max {
        c.fraction("requirements.memory_fraction_max", v)?;
    }
    if let Some(v) = r.gpu_utilization_min {
        c.fraction("requirements.gpu_utilization_min", v)?;
    }
    if let Some(v) = r.gpus_max {
        c.at_least_one("requirements.gpus_max", v)?;
    }
    Ok(())
}

/// Event `i`: its figures in range, its GPU, node or link in the cluster, `until_s`
/// after `at_s`.
pub(super) fn check_event(
    c: &Checker,
    i: usize,
    e: &WhatIfEvent,
    nodes: u32,
    gpus_per_node: u32,
    nics_per_node: u32,
) -> Result<(), InputError> {
    let key = |k: &str| format!("events.{i}.{k}");
    let gpus = nodes * gpus_per_node;
    let (at, until) = match *e {
        WhatIfEvent::LinkSlowdown { at_s, until_s, node, fraction, .. } => {
            c.fraction(&key("fraction"), fraction)?;
            if let Some(n) = node {
                if n >= nodes {
                    return Err(c.err(&key("node"), format!("is {n}; nodes are numbered 0..{}", nodes - 1)));
                }
            }
            (at_s, until_s)
        }
        WhatIfEvent::GpuSlowdown { at_s, until_s, gpu, fraction } => {
            c.fraction(&key("fraction"), fraction)?;
            if gpu >= gpus {
                return Err(c.err(&key("gpu"), format!("is {gpu}; GPUs are numbered 0..{}", gpus - 1)));
            }
            (at_s, until_s)
        }
        WhatIfEvent::GpuFailure { at_s, until_s, gpu } => {
            if gpu >= gpus {
                return Err(c.err(&key("gpu"), format!("is {gpu}; GPUs are numbered 0..{}", gpus - 1)));
            }
            (at_s, until_s)
        }
        WhatIfEvent::LinkFailure { at_s, until_s, node, index, link } => {
            if node >= nodes {
                return Err(c.err(&key("node"), format!("is {node}; nodes are numbered 0..{}", nodes - 1)));
            }
            let (count, what) =
                if link == LinkClass::Nic { (nics_per_node, "NICs") } else { (gpus_per_node, "GPUs (NVLink)") };
            if index >= count {
                return Err(c.err(&key("index"), format!("is {index}; a node's {what} are numbered 0..{}", count - 1)));
            }
            (at_s, until_s)
        }
        WhatIfEvent::LoadChange { at_s, until_s, factor } => {
            c.positive(&key("factor"), factor)?;
            (at_s, until_s)
        }
    };
    c.non_negative(&key("at_s"), at)?;
    if let Some(u) = until {
        if !(u.is_finite() && u > at) {
            return Err(c.err(&key("until_s"), format!("is {u}; must be later than at_s ({at})")));
        }
    }
    Ok(())
}
