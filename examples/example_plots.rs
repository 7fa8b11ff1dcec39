//! Regenerates the curated example charts in `plots/` from shipped scenarios.
//!
//! `cargo run --release --example example_plots`
//!
//! Each scenario is simulated into a temporary results folder, its charts are
//! rendered, and the PNGs are copied to `plots/<scenario>/`.

use clustersim::output::{plots, writer};
use clustersim::scenario::{load, validate, Override};
use clustersim::serving::{simulate, RunOptions};
use std::path::Path;

fn main() -> Result<(), clustersim::Error> {
    let cases: [(&str, &[&str]); 3] = [
        ("scenarios/seed_corrected.toml", &[]),
        ("scenarios/mixtral_ep_2nodes.toml", &[]),
        ("scenarios/azure_conv_llama2-70b.toml", &["workload.limit=4000"]),
    ];
    for (path, overrides) in cases {
        let o: Vec<Override> =
            overrides.iter().map(|s| s.parse().map_err(clustersim::Error::Usage)).collect::<Result<_, _>>()?;
        let scenario = load(Path::new(path), &o)?;
        let setup = validate(&scenario, Path::new(path))?;
        let tmp = std::env::temp_dir().join(format!("clustersim-example-{}-{}", setup.name, std::process::id()));
        std::fs::create_dir_all(&tmp).map_err(|e| clustersim::Error::io(&tmp, e))?;
        let text = toml::to_string(&scenario).map_err(|e| clustersim::Error::Run(e.to_string()))?;
        std::fs::write(tmp.join("scenario.toml"), text).map_err(|e| clustersim::Error::io(&tmp, e))?;
        let requests = Some(clustersim::output::records::CsvRequestSink::create(&tmp.join("requests.csv"))?);
        let opts = RunOptions { requests, ..Default::default() };
        let outcome = simulate(&setup, opts)?;
        writer::write_report(&tmp, &outcome.report)?;
        let written = plots::render_all(&tmp, &plots::PlotOptions::default())?;
        let dest = Path::new("plots").join(&setup.name);
        std::fs::create_dir_all(&dest).map_err(|e| clustersim::Error::io(&dest, e))?;
        for p in written.iter().filter(|p| p.extension().is_some_and(|e| e == "png")) {
            let to = dest.join(p.file_name().unwrap_or_default());
            std::fs::copy(p, &to).map_err(|e| clustersim::Error::io(&to, e))?;
        }
        std::fs::remove_dir_all(&tmp).map_err(|e| clustersim::Error::io(&tmp, e))?;
        println!("{}: charts in {}", setup.name, dest.display());
    }
    Ok(())
}
