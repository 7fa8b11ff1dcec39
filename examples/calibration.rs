//! Prints the calibration tables: Splitwise end-to-end step times at TP 8/4/2
//! (`vllm-2023`, and `optimized` at TP8) and Vidur per-GEMM times (bare H100 preset), measured vs
//! simulated. Run: `cargo run --example calibration`.

#[path = "../tests/support/calibration_data.rs"]
mod calibration_data;

use calibration_data::{markdown, splitwise_points, vidur_points};

fn main() {
    for tp in [8, 4, 2] {
        println!("## Splitwise, Llama-2-70B fp16 TP{tp}, framework vllm-2023\n");
        println!("{}", markdown(&splitwise_points("vllm-2023", tp)));
    }
    println!("## Splitwise TP8 points, framework optimized (what a current stack would do)\n");
    println!("{}", markdown(&splitwise_points("optimized", 8)));
    println!("## Vidur per-GEMM profiles, H100, bare hardware preset\n");
    println!("{}", markdown(&vidur_points()));
}
