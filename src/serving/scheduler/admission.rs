//! Admission policies: how many KV blocks a newly admitted sequence takes, and how
//! many must stay free, under `preempt` and `no_evict`.

use super::prefix::Reuse;
use crate::model::framework::Admission;
use crate::serving::kv::{blocks_for, KvPool};
use crate::serving::request::Request;

/// Share of blocks kept free when admitting, so admissions do not cause immediate
/// preemptions (vLLM keeps a 1 % watermark).
const WATERMARK: f64 = 0.01;

/// Whether a first chunk of `chunk` tokens after a cached prefix `u` fits in `pool`
/// (`alone`: nothing else runs in it) under `policy`: (blocks the sequence spans once
/// admitted, blocks to take now), or None when it must wait.
pub(super) fn fit(
    policy: Admission,
    r: &Request,
    u: &Reuse,
    chunk: u32,
    pool: &KvPool,
    alone: bool,
) -> Option<(u32, u32)> {
    let watermark = (pool.total as f64 * WATERMARK).ceil() as u32;
    let avail = pool.available() - u.idle_kv;
    let now = blocks_for(u.tokens + chunk, pool.block_tokens);
    let (span, reserve) = match policy {
        Admission::Preempt => (now, watermark),
        // The whole life of the request: prompt plus every output token, so no later
        // chunk or decode needs another block (no watermark: nothing grows). A request
        // bigger than what is free gets what there is when it runs alone, as under
        // `preempt`, rather than waiting forever.
        Admission::NoEvict => {
            let life = blocks_for(r.peak_tokens(), pool.block_tokens);
            let most = (avail + u.kv).saturating_sub(u.reload_kv).max(now);
            (if alone { life.min(most) } else { life }, 0)
        }
    };
    let need = span - u.kv + u.reload_kv;
    (avail >= need + reserve || (alone && avail >= need)).then_some((span, need))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::serving::request::Request;

    /// Runs 4 requests of 4 prompt + 8 output tokens to completion on one pool of 10
    /// blocks of 4 tokens, every iteration finishing at once; returns (preemptions,
    /// most requests running at once).
    fn run_to_completion(admission: Admission) -> (u32, usize) {
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 10, 4);
        for id in 0..4 {
            let s = reqs.insert(Request::new(id, SimTime::ZERO, 4, 8));
            q.waiting.push_back(s);
        }
        let lim = Limits { max_batch_tokens: 64, max_seqs: 8, chunked_prefill: true, chunk_tokens: 64, admission };
        let (mut preempted, mut most, mut out) = (0, 0, Vec::new());
        for _ in 0..200 {
            preempted += q.form_batch(&mut reqs, &lim, SimTime::ZERO, &mut out);
            most = most.max(q.running.len());
            for e in &out {
                let r = reqs.get_mut(e.slot);
                r.computed += e.new_tokens;
                r.generated += u32::from(e.emits);
            }
            for e in &out {
                if reqs.get(e.slot).is_done() {
                    q.retire(&mut reqs, e.slot);
                }
            }
            if q.requests() == 0 {
                return (preempted, most);
            }
        }
        panic!("did not finish in 200 iterations");
    }

    #[test]
    fn no_evict_never_preempts_where_preempt_does() {
        // Pool: 10 blocks of 4 tokens; 4 requests of 4 + 8 tokens (12 = 3 blocks each,
        // 12 for all four > 10).
        // preempt: each prompt needs 1 block and the watermark ceil(1 % of 10) = 1, so
        // all 4 are admitted (4 used). Each grows a block at 5 and at 9 tokens: at 5
        // tokens 4 more (8 used), at 9 tokens the first two take the last 2 and the
        // third finds none: the newest is preempted (and later the pool runs out again).
        // no_evict: each reserves 3 blocks up front; 3 fit (9 used, 1 free < 3), the
        // 4th waits for a finished one; no block is ever needed later, so 0 preemptions.
        let (pre, most) = run_to_completion(Admission::Preempt);
        assert!(pre >= 1, "preempt made {pre} preemptions");
        assert_eq!(most, 4);
        assert_eq!(run_to_completion(Admission::NoEvict), (0, 3));
    }
}
