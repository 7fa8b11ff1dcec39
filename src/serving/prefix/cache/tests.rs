use super::*;

#[test]
fn a_prompt_sharing_three_of_four_blocks_hits_three() {
    // Request A computed blocks [1, 2, 3, 4]; B's chain [1, 2, 3, 9] shares the first
    // three, so B hits 3 blocks and must compute only the fourth.
    let mut c = PrefixCache::new(2, 0);
    for h in [1, 2, 3, 4] {
        assert!(c.register(h));
    }
    let hit = c.lookup(&[1, 2, 3, 9], 4);
    assert_eq!(hit, Hit { blocks: 3, host_blocks: 0, idle_hbm_blocks: 0 });
    // A chain whose first block differs shares nothing, even if later hashes match.
    assert_eq!(c.lookup(&[7, 2, 3], 3).blocks, 0);
    // The lookup respects its cap.
    assert_eq!(c.lookup(&[1, 2, 3, 4], 2).blocks, 2);
}

#[test]
fn lru_evicts_the_oldest_unreferenced_block_first() {
    // Blocks 10 and 20 released in that order (10 older); 30 still referenced.
    // Evicting one hash block (2 KV blocks) must take 10; then 20; 30 never goes.
    let mut c = PrefixCache::new(2, 0);
    for h in [10, 20, 30] {
        c.register(h);
    }
    c.release(&[10], 1);
    c.release(&[20], 1);
    assert_eq!(c.evictable_engine_blocks(), 4);
    assert_eq!(c.evict(1), 2);
    assert_eq!((c.lookup(&[10], 1).blocks, c.lookup(&[20], 1).blocks), (0, 1));
    assert_eq!(c.evict(2), 2);
    assert_eq!(c.lookup(&[20], 1).blocks, 0);
    assert_eq!(c.evict(2), 0, "a referenced block is never evicted");
    assert_eq!((c.hbm_blocks, c.counters.evicted), (1, 2));
}

#[test]
fn a_chain_released_together_loses_its_tail_first() {
    // One request held [1, 2, 3]; released together, block 3 is the oldest so a
    // one-block eviction keeps the shareable head [1, 2].
    let mut c = PrefixCache::new(1, 0);
    for h in [1, 2, 3] {
        c.register(h);
    }
    c.release(&[1, 2, 3], 3);
    c.evict(1);
    assert_eq!(c.lookup(&[1, 2, 3], 3).blocks, 2);
}

#[test]
fn a_reacquired_block_is_not_evictable_until_released_again() {
    let mut c = PrefixCache::new(4, 0);
    c.register(5);
    c.release(&[5], 1);
    assert_eq!(c.lookup(&[5], 1).idle_hbm_blocks, 1);
    c.acquire(&[5], 1);
    assert_eq!(c.evictable_engine_blocks(), 0);
    c.release(&[5], 1);
    assert_eq!(c.evictable_engine_blocks(), 4);
}

#[test]
fn evicted_blocks_go_to_host_and_the_host_tier_drops_its_oldest_when_full() {
    // Host tier of 1 hash block. Evict 1 then 2: 1 goes to host, then 2 replaces it.
    let mut c = PrefixCache::new(1, 1);
    for h in [1, 2] {
        c.register(h);
    }
    c.release(&[1], 1);
    c.release(&[2], 1);
    c.evict(1);
    assert_eq!(c.lookup(&[1], 1), Hit { blocks: 1, host_blocks: 1, idle_hbm_blocks: 0 });
    c.evict(1);
    assert_eq!(c.lookup(&[1], 1).blocks, 0);
    assert_eq!(c.lookup(&[2], 1).host_blocks, 1);
    assert_eq!((c.counters.evicted, c.counters.host_dropped, c.host_blocks()), (2, 1, 1));
    // Acquiring it reloads it into HBM.
    c.acquire(&[2], 1);
    assert_eq!((c.counters.reloaded, c.hbm_blocks, c.host_blocks()), (1, 1, 0));
}

#[test]
fn registering_a_cached_hash_references_the_cached_copy() {
    let mut c = PrefixCache::new(1, 0);
    assert!(c.register(8));
    assert!(!c.register(8), "the second copy is a duplicate the caller gives back");
    c.release(&[8], 1);
    assert_eq!(c.evictable_engine_blocks(), 0, "still referenced once");
    c.release(&[8], 1);
    assert_eq!(c.evictable_engine_blocks(), 1);
}
