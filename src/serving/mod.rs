//! Serving on the simulated cluster: router, replica scheduler (continuous batching,
//! chunked prefill, paged KV cache), and the simulation loop.
