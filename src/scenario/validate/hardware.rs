//! `[hardware]`: the GPU (preset or every field given, then overrides) and the links
//! inside and between nodes.

use super::Checker;
use crate::error::InputError;
use crate::hardware::spec::{gpu_preset, gpu_preset_names, GpuSpec, NetworkSpec, NvlinkSpec};
use crate::scenario::types::{GpuSpecConfig, HardwareConfig};

/// The GPU: the named preset or a custom one, with `hardware.gpu_spec` applied and checked.
pub(super) fn resolve_gpu(c: &Checker, h: &HardwareConfig) -> Result<GpuSpec, InputError> {
    let o = h.gpu_spec.clone().unwrap_or_default();
    let mut g = base_gpu(c, h, &o)?;
    apply_gpu_overrides(&mut g, &o);
    check_gpu(c, &g)?;
    Ok(g)
}

/// The preset named by `hardware.gpu`, or without one a custom GPU from
/// `hardware.gpu_spec`, whose required fields must then all be given.
fn base_gpu(c: &Checker, h: &HardwareConfig, o: &GpuSpecConfig) -> Result<GpuSpec, InputError> {
    if let Some(name) = &h.gpu {
        let p = gpu_preset(name).ok_or_else(|| {
            c.err("hardware.gpu", format!("unknown GPU preset {name:?}; known: {}", gpu_preset_names().join(", ")))
        })?;
        return Ok((p.spec)());
    }
    let need = |v: Option<f64>, k: &str| {
        v.ok_or_else(|| {
            c.err(
                &format!("hardware.gpu_spec.{k}"),
                format!(
                    "is missing; without a `hardware.gpu` preset every GPU field must be given (presets: {})",
                    gpu_preset_names().join(", ")
                ),
            )
        })
    };
    let peak = need(o.peak_tflops, "peak_tflops")?;
    let eff = need(o.compute_efficiency, "compute_efficiency")?;
    Ok(GpuSpec {
        name: "custom".into(),
        peak_tflops: peak,
        peak_fp8_tflops: o.peak_fp8_tflops.unwrap_or(peak),
        compute_efficiency: eff,
        // No power-cap window unless given: GEMMs at `compute_efficiency`.
        gemm_efficiency_short: eff,
        gemm_efficiency_long: eff,
        gemm_boost_window_us: 0.0,
        memory_gib: need(o.memory_gib, "memory_gib")?,
        memory_bandwidth_tb_s: need(o.memory_bandwidth_tb_s, "memory_bandwidth_tb_s")?,
        memory_efficiency: need(o.memory_efficiency, "memory_efficiency")?,
        launch_overhead_us: o.launch_overhead_us.unwrap_or(4.0),
        sm_count: crate::hardware::spec::default_sm_count(),
        kernels: Default::default(),
    })
}

/// Every field `hardware.gpu_spec` gives replaces the base GPU's.
fn apply_gpu_overrides(g: &mut GpuSpec, o: &GpuSpecConfig) {
    if let Some(v) = o.peak_tflops {
        g.peak_tflops = v;
    }
    if let Some(v) = o.peak_fp8_tflops {
        g.peak_fp8_tflops = v;
    }
    if let Some(v) = o.compute_efficiency {
        g.compute_efficiency = v;
        // Overriding the one efficiency alone keeps its old meaning for GEMMs too.
        if o.gemm_efficiency_short.is_none() && o.gemm_efficiency_long.is_none() {
            g.gemm_efficiency_short = v;
            g.gemm_efficiency_long = v;
        }
    }
    if let Some(v) = o.gemm_efficiency_short {
        g.gemm_efficiency_short = v;
        if o.gemm_efficiency_long.is_none() {
            g.gemm_efficiency_long = g.gemm_efficiency_long.min(v);
        }
    }
    if let Some(v) = o.gemm_efficiency_long {
        g.gemm_efficiency_long = v;
    }
    if let Some(v) = o.gemm_boost_window_us {
        g.gemm_boost_window_us = v;
    }
    if let Some(v) = o.memory_gib {
        g.memory_gib = v;
    }
    if let Some(v) = o.memory_bandwidth_tb_s {
        g.memory_bandwidth_tb_s = v;
    }
    if let Some(v) = o.memory_efficiency {
        g.memory_efficiency = v;
    }
    if let Some(v) = o.launch_overhead_us {
        g.launch_overhead_us = v;
    }
}

/// The resolved GPU's figures are in range.
fn check_gpu(c: &Checker, g: &GpuSpec) -> Result<(), InputError> {
    c.positive("hardware.gpu_spec.peak_tflops", g.peak_tflops)?;
    c.positive("hardware.gpu_spec.peak_fp8_tflops", g.peak_fp8_tflops)?;
    c.fraction("hardware.gpu_spec.compute_efficiency", g.compute_efficiency)?;
    c.fraction("hardware.gpu_spec.gemm_efficiency_short", g.gemm_efficiency_short)?;
    c.fraction("hardware.gpu_spec.gemm_efficiency_long", g.gemm_efficiency_long)?;
    if g.gemm_efficiency_long > g.gemm_efficiency_short {
        return Err(c.err(
            "hardware.gpu_spec.gemm_efficiency_long",
            format!(
                "is {}; it cannot exceed gemm_efficiency_short ({})",
                g.gemm_efficiency_long, g.gemm_efficiency_short
            ),
        ));
    }
    c.non_negative("hardware.gpu_spec.gemm_boost_window_us", g.gemm_boost_window_us)?;
    c.positive("hardware.gpu_spec.memory_gib", g.memory_gib)?;
    c.positive("hardware.gpu_spec.memory_bandwidth_tb_s", g.memory_bandwidth_tb_s)?;
    c.fraction("hardware.gpu_spec.memory_efficiency", g.memory_efficiency)?;
    c.non_negative("hardware.gpu_spec.launch_overhead_us", g.launch_overhead_us)?;
    Ok(())
}

/// NVLink and the network: the GPU preset's (H100 SXM's for a custom GPU), one NIC
/// per GPU, with `hardware.nvlink` / `hardware.network` applied and checked.
pub(super) fn resolve_links(c: &Checker, h: &HardwareConfig) -> Result<(NvlinkSpec, NetworkSpec), InputError> {
    let preset = h.gpu.as_deref().and_then(gpu_preset).or_else(|| gpu_preset("h100-sxm"));
    let preset = preset.ok_or_else(|| c.err("hardware.gpu", "no link preset"))?;
    let mut nv = (preset.nvlink)();
    let mut net = (preset.network)();
    net.nics_per_node = h.gpus_per_node;
    if let Some(o) = &h.nvlink {
        if let Some(v) = o.bandwidth_gb_s {
            nv.bandwidth_gb_s = c.positive("hardware.nvlink.bandwidth_gb_s", v)?;
        }
        if let Some(v) = o.efficiency {
            nv.efficiency = c.fraction("hardware.nvlink.efficiency", v)?;
        }
        if let Some(v) = o.latency_us {
            nv.latency_us = c.non_negative("hardware.nvlink.latency_us", v)?;
        }
        if let Some(v) = o.bandwidth_scale {
            nv.bandwidth_gb_s *= c.positive("hardware.nvlink.bandwidth_scale", v)?;
        }
    }
    if let Some(o) = &h.network {
        if let Some(v) = o.nic_bandwidth_gb_s {
            net.nic_bandwidth_gb_s = c.positive("hardware.network.nic_bandwidth_gb_s", v)?;
        }
        if let Some(v) = o.efficiency {
            net.efficiency = c.fraction("hardware.network.efficiency", v)?;
        }
        if let Some(v) = o.nics_per_node {
            net.nics_per_node = c.at_least_one("hardware.network.nics_per_node", v)?;
        }
        if let Some(v) = o.latency_us {
            net.latency_us = c.non_negative("hardware.network.latency_us", v)?;
        }
        if let Some(v) = o.topology {
            net.topology = v;
        }
        if let Some(v) = o.oversubscription {
            if !(v.is_finite() && v >= 1.0) {
                return Err(
                    c.err("hardware.network.oversubscription", format!("is {v}; must be >= 1 (1 = non-blocking)"))
                );
            }
            net.oversubscription = v;
        }
        if let Some(v) = o.bandwidth_scale {
            net.nic_bandwidth_gb_s *= c.positive("hardware.network.bandwidth_scale", v)?;
        }
    }
    Ok((nv, net))
}
