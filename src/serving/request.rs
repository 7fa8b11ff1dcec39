//! A request's progress through a replica.

use crate::engine::SimTime;
use crate::metrics::recorder::RequestTimes;

/// One request being served.
#[derive(Clone, Debug)]
pub struct Request {
    /// Id in arrival order.
    pub id: u64,
    /// Arrival time.
    pub arrival: SimTime,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens wanted.
    pub output_tokens: u32,
    /// Tokens to prefill: the prompt, plus output already produced after a preemption
    /// (recompute: the KV cache is rebuilt from all tokens so far).
    pub prefill_len: u32,
    /// Tokens whose KV is in the cache.
    pub computed: u32,
    /// Output tokens produced.
    pub generated: u32,
    /// KV blocks held.
    pub blocks: u32,
    /// The attention data-parallel group (of the replica's `ep`) whose KV pool holds
    /// this sequence: fixed from admission to completion, since KV cannot move.
    pub kv_group: u32,
    /// Part of a batch that has not finished yet.
    pub in_flight: bool,
    /// First scheduled.
    pub scheduled_at: Option<SimTime>,
    /// First token produced.
    pub first_token_at: Option<SimTime>,
    /// Latest token produced.
    pub last_token_at: Option<SimTime>,
    /// Times preempted.
    pub preemptions: u32,
    /// Re-routed after a GPU failure.
    pub rerouted: bool,
    /// Hashes of the prompt's full hash blocks, in order (empty without prefix caching).
    pub chain: Box<[u64]>,
    /// Leading blocks of `chain` this request references in its pool's prefix cache;
    /// their KV blocks (counted in `blocks`) belong to the cache, not to it.
    pub cached_blocks: u32,
    /// Prompt tokens its first admission found cached (None until admitted, or
    /// without prefix caching).
    pub prefix_hit_tokens: Option<u32>,
    /// Blocks reloaded from host memory are in HBM from this time on: its next
    /// chunk is not scheduled before.
    pub kv_ready_at: SimTime,
}

impl Request {
    /// A request that just arrived.
    pub fn new(id: u64, arrival: SimTime, prompt_tokens: u32, output_tokens: u32) -> Self {
        Request {
            id,
            arrival,
            prompt_tokens,
            output_tokens,
            prefill_len: prompt_tokens,
            computed: 0,
            generated: 0,
            blocks: 0,
            kv_group: 0,
            in_flight: false,
            scheduled_at: None,
            first_token_at: None,
            last_token_at: None,
            preemptions: 0,
            rerouted: false,
            chain: Box::default(),
            cached_blocks: 0,
            prefix_hit_tokens: None,
            kv_ready_at: SimTime::ZERO,
        }
    }
    /// Still prefilling (prompt, or recompute after preemption).
    pub fn in_prefill(&self) -> bool {
        self.computed < self.prefill_len
    }
    /// All output produced.
    pub fn is_done(&self) -> bool {
        self.generated >= self.output_tokens
    }
    /// What the least-outstanding router counts against a replica: the prompt plus
    /// the output not yet produced (preemption does not change it, so the replica's
    /// sum stays exact under recompute).
    pub fn outstanding_tokens(&self) -> u64 {
        self.prompt_tokens as u64 + (self.output_tokens - self.generated.min(self.output_tokens)) as u64
    }
    /// The request as it goes back to the router after its replica failed: its KV is
    /// lost, so everything produced so far is prefilled again elsewhere.
    pub fn restart(mut self) -> Request {
        self.in_flight = false;
        self.blocks = 0;
        self.cached_blocks = 0;
        self.computed = 0;
        self.prefill_len = self.prompt_tokens.saturating_add(self.generated);
        self.rerouted = true;
        self
    }
    /// What the recorder keeps of it when it finishes.
    pub fn times(&self) -> RequestTimes {
        RequestTimes {
            id: self.id,
            arrival: self.arrival,
            scheduled_at: self.scheduled_at,
            first_token_at: self.first_token_at,
            prompt_tokens: self.prompt_tokens,
            output_tokens: self.output_tokens,
            preemptions: self.preemptions,
            rerouted: self.rerouted,
        }
    }
    /// Tokens the KV cache must hold at the end of the request.
    pub fn peak_tokens(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.output_tokens)
    }
}

/// Requests in flight, addressed by slot; finished requests free their slot, so
/// memory follows the number of requests in the system, not the run's length.
#[derive(Debug, Default)]
pub struct RequestSlab {
    slots: Vec<Option<Request>>,
    free: Vec<u32>,
}

impl RequestSlab {
    /// Stores a request and returns its slot.
    pub fn insert(&mut self, r: Request) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(r);
                i
            }
            None => {
                self.slots.push(Some(r));
                (self.slots.len() - 1) as u32
            }
        }
    }
    /// Removes and returns the request in `slot`.
    pub fn remove(&mut self, slot: u32) -> Request {
        let r = self.slots[slot as usize].take().expect("slot holds a request");
        self.free.push(slot);
        r
    }
    /// The request in `slot`.
    pub fn get(&self, slot: u32) -> &Request {
        self.slots[slot as usize].as_ref().expect("slot holds a request")
    }
    /// The request in `slot`, mutably.
    pub fn get_mut(&mut self, slot: u32) -> &mut Request {
        self.slots[slot as usize].as_mut().expect("slot holds a request")
    }
    /// Requests held.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
    /// True when no request is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
