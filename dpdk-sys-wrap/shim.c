/*
 * DPDK's fast-path API is `static inline` in its headers, so there is no symbol for Rust to
 * link against. Each function here re-exports one of them unchanged: those called once per
 * burst or less (bulk alloc, free, append) or that read C thread-locals (lcore id, rte_errno).
 * RX/TX burst are written in Rust in lib.rs instead: an app polls idle queues far more often
 * than it moves a burst, and each poll through the shim cost a call (measured: ~7% of l2fwd's
 * rate on virtual ports). Per-packet accessors (mtod, rdtsc, pause) are in lib.rs too.
 */
#include <string.h>
#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_rcu_qsbr.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_thash.h>

int sluice_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

/* As rte_pktmbuf_alloc_bulk, for a pool whose mbufs all hold one frame of `len` bytes: they are
 * taken raw and given that frame's place and length, not reset, so that the caller rewrites
 * only what changes. Refcount, next and segment count are right for every mbuf in a pool
 * (DPDK frees them so); the other fields such a pool's mbufs only ever get from this. */
int sluice_pktmbuf_alloc_bulk_filled(struct rte_mempool *mp, struct rte_mbuf **mbufs,
				     unsigned int count, uint16_t len)
{
	if (rte_mempool_get_bulk(mp, (void **)mbufs, count) != 0)
		return -ENOENT;
	for (unsigned int i = 0; i < count; i++) {
		struct rte_mbuf *m = mbufs[i];
		m->data_off = RTE_PKTMBUF_HEADROOM;
		m->data_len = len;
		m->pkt_len = len;
	}
	return 0;
}

void sluice_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *sluice_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

/* The lcore id and rte_errno are per-thread variables of the C runtime (TLS), out of Rust's reach. */
unsigned int sluice_lcore_id(void)
{
	return rte_lcore_id();
}

int sluice_errno(void)
{
	return rte_errno;
}

/* DPDK's software Toeplitz hash: the reference our own (sluice::rss) is tested against. */
uint32_t sluice_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key)
{
	return rte_softrss(input_tuple, input_len, rss_key);
}

/* DPDK's own ring in single-producer/single-consumer mode: the reference the SPSC ring in
 * sluice::ring is benchmarked against. */
unsigned int sluice_ring_sp_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n)
{
	return rte_ring_sp_enqueue_burst(r, obj_table, n, NULL);
}

unsigned int sluice_ring_sc_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n)
{
	return rte_ring_sc_dequeue_burst(r, obj_table, n, NULL);
}

/* The next hop of host-order `ip`: rte_lpm_lookup's first step written out, for the compiler
 * to interleave four of them. An entry that may point into tbl8 (its group bit set, valid or
 * not) takes DPDK's own path. */
static inline uint16_t lpm_hop(const struct rte_lpm *lpm, uint32_t ip, uint16_t miss)
{
	uint32_t entry, hop;
	memcpy(&entry, &lpm->tbl24[ip >> 8], sizeof(entry));
	if (likely(!(entry & (RTE_LPM_VALID_EXT_ENTRY_BITMASK & ~RTE_LPM_LOOKUP_SUCCESS))))
		return (entry & RTE_LPM_LOOKUP_SUCCESS) ? (uint16_t)entry : miss;
	return rte_lpm_lookup(lpm, ip, &hop) == 0 ? (uint16_t)hop : miss;
}

/* IPv4 LPM lookup of a whole burst in one call. Destination i, in network order, is `stride * i`
 * bytes after the first, `dsts` (each in a key of its burst); its next hop goes to
 * next_hops[i], `miss` if no route matches. Next hops are port ids, so 16 bits hold them. Four
 * destinations per step: their table loads are independent, so they overlap. */
void sluice_lpm_lookup_keys(const struct rte_lpm *lpm, const void *dsts, size_t stride,
			    uint16_t *next_hops, unsigned int n, uint16_t miss)
{
	const uint8_t *at = dsts;
	uint16_t *out = next_hops, *end = next_hops + n;
	for (; end - out >= 4; out += 4, at += 4 * stride) {
		uint32_t dst[4];
		for (unsigned int k = 0; k < 4; k++)
			memcpy(&dst[k], at + k * stride, sizeof(dst[k]));
		for (unsigned int k = 0; k < 4; k++)
			out[k] = lpm_hop(lpm, rte_be_to_cpu_32(dst[k]), miss);
	}
	for (; out < end; out++, at += stride) {
		uint32_t dst;
		memcpy(&dst, at, sizeof(dst));
		*out = lpm_hop(lpm, rte_be_to_cpu_32(dst), miss);
	}
}

/* IPv6 LPM lookup of a whole burst, as sluice_lpm_lookup_keys, of 16-byte destinations. One
 * rte_lpm6_lookup each, straight from the key (the bulk call wants the addresses copied into an
 * array of their own first). */
void sluice_lpm6_lookup_keys(const struct rte_lpm6 *lpm, const void *dsts, size_t stride,
			     uint16_t *next_hops, unsigned int n, uint16_t miss)
{
	const uint8_t *at = dsts;
	for (unsigned int i = 0; i < n; i++, at += stride) {
		uint32_t hop;
		next_hops[i] = rte_lpm6_lookup(lpm, at, &hop) == 0 ? (uint16_t)hop : miss;
	}
}

/* The CRC32 hash of the exact-match tables, as a function pointer for rte_hash: a CRC32 step
 * per 8-byte word, as rte_hash_crc takes them. Keys are whole words (16 bytes for IPv4, 48 for
 * IPv6; the Rust side asserts it), so there is no tail to hash; the two key sizes get loops
 * the compiler unrolls, which run in a third of the instructions. */
static inline uint32_t crc_words(const uint8_t *p, unsigned int words, uint32_t crc)
{
	for (unsigned int i = 0; i < words; i++) {
		uint64_t word;
		memcpy(&word, p + 8 * i, sizeof(word));
		crc = rte_hash_crc_8byte(word, crc);
	}
	return crc;
}

static inline uint32_t hash_key(const void *data, uint32_t data_len, uint32_t init_val)
{
	switch (data_len) {
	case 16:
		return crc_words(data, 2, init_val);
	case 48:
		return crc_words(data, 6, init_val);
	default:
		return crc_words(data, data_len / 8, init_val);
	}
}

uint32_t sluice_hash_crc_words(const void *data, uint32_t data_len, uint32_t init_val)
{
	return hash_key(data, data_len, init_val);
}

/* The hashes of a burst of `n` keys of `key_len` bytes, one after the other, as the table's hash
 * function (sluice_hash_crc_words, with rte_hash's default initial value of 0) gives them: for
 * rte_hash_lookup_with_hash_bulk, one call per burst instead of one through a function pointer
 * per key. */
void sluice_hash_crc_keys(const void *keys, uint32_t key_len, unsigned int n, uint32_t *hashes)
{
	const uint8_t *key = keys;
	for (unsigned int i = 0; i < n; i++, key += key_len)
		hashes[i] = hash_key(key, key_len, 0);
}

/* A reader starts (online) or stops (offline) reporting quiescent states. */
void sluice_rcu_qsbr_thread_online(struct rte_rcu_qsbr *v, unsigned int thread_id)
{
	rte_rcu_qsbr_thread_online(v, thread_id);
}

void sluice_rcu_qsbr_thread_offline(struct rte_rcu_qsbr *v, unsigned int thread_id)
{
	rte_rcu_qsbr_thread_offline(v, thread_id);
}

/* A reader reports a quiescent state (no table references held) once per burst. */
void sluice_rcu_qsbr_quiescent(struct rte_rcu_qsbr *v, unsigned int thread_id)
{
	rte_rcu_qsbr_quiescent(v, thread_id);
}
