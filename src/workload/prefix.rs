//! Prefix identity of requests: the chain of block hashes a prefix cache keys on.
//!
//! A [`PrefixKey`] is what a [`super::RequestSpec`] carries (small and `Copy`); the
//! workload turns it into the chain with [`super::Workload::chain`]. Block `i` of a
//! chain names the first `(i + 1) x block` tokens of the prompt, so two chains agree
//! up to where the prompts diverge. Only full blocks are named.
//!
//! - A Mooncake trace row: its `hash_ids` (512-token blocks), taken as they are.
//! - A generated request: block `i` lies inside the shared system prompt when
//!   `(i + 1) x block <= system_prompt_tokens` and is then the same for every
//!   request; otherwise it belongs to the request's session (one multi-turn
//!   conversation, or the request alone), and the session's later turns, whose
//!   prompts extend the earlier ones, repeat it.

/// Where a request's hash chain comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrefixKey {
    /// No prefix identity (a trace without hash ids).
    #[default]
    None,
    /// Trace row `row`'s `hash_ids`.
    TraceRow(u32),
    /// A generated request of session `session`.
    Session(u64),
}

/// The hash of block `index` of a generated stream: `owner` 0 is the shared system
/// prompt, `owner` s + 1 session s. SplitMix64's finalizer mixes the two so that
/// distinct pairs give distinct-looking 64-bit names (a collision would need 2^32
/// blocks to be likely).
pub fn block_hash(owner: u64, index: u32) -> u64 {
    let mut z = owner.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((index as u64) << 1 | 1);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The chain of a generated request of `prompt_tokens` tokens in session `session`
/// whose first `system_tokens` tokens are the shared system prompt, in blocks of
/// `block_tokens` tokens.
pub fn generated_chain(session: u64, prompt_tokens: u32, system_tokens: u32, block_tokens: u32) -> Box<[u64]> {
    let full = prompt_tokens / block_tokens.max(1);
    (0..full)
        .map(|i| {
            let shared = (i as u64 + 1) * block_tokens as u64 <= system_tokens as u64;
            block_hash(if shared { 0 } else { session + 1 }, i)
        })
        .collect()
}

/// The chain of a trace row with `hash_ids` of `hash_block_tokens`-token blocks and
/// `prompt_tokens` tokens: its full blocks only (a last partial block is not named).
pub fn trace_chain(hash_ids: &[u32], prompt_tokens: u32, hash_block_tokens: u32) -> Box<[u64]> {
    let full = (prompt_tokens / hash_block_tokens.max(1)) as usize;
    hash_ids.iter().take(full).map(|h| *h as u64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_prompt_is_shared_and_a_session_is_its_own() {
        // Blocks of 16 tokens, system prompt 40 tokens: blocks 0 and 1 (tokens 0..32)
        // lie inside it; block 2 (32..48) straddles it and so belongs to the session.
        let a = generated_chain(7, 100, 40, 16);
        let b = generated_chain(8, 100, 40, 16);
        assert_eq!(a.len(), 6); // 100 / 16 = 6 full blocks
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
        // A later turn of session 7 extends its prompt: its chain extends the first one.
        let later = generated_chain(7, 180, 40, 16);
        assert_eq!(later[..6], a[..]);
        assert_eq!(later.len(), 11);
    }

    #[test]
    fn a_trace_chain_keeps_full_blocks_only() {
        // 1,100 tokens in 512-token blocks: 2 full blocks, the third (76 tokens) partial.
        assert_eq!(&*trace_chain(&[4, 5, 6], 1100, 512), &[4, 5]);
    }
}
