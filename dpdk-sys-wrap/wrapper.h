/* The DPDK headers Sluice binds. bindgen reads this file at build time (see build.rs). */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>
#include <rte_thash.h>
#include <rte_telemetry.h>
#include <rte_pdump.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_hash.h>
#include <rte_rcu_qsbr.h>
#include <rte_malloc.h>
#include <rte_acl.h>
#include <rte_meter.h>

/*
 * Exported by shim.c: DPDK's static-inline functions that Sluice calls, as real symbols.
 * Each is called once per burst or less, so the call costs nothing measurable; RX/TX burst
 * and the per-packet accessors are written in Rust in lib.rs instead.
 */
int sluice_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
int sluice_pktmbuf_alloc_bulk_filled(struct rte_mempool *mp, struct rte_mbuf **mbufs,
				     unsigned int count, uint16_t len);
void sluice_pktmbuf_free(struct rte_mbuf *m);
char *sluice_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
unsigned int sluice_lcore_id(void);
int sluice_errno(void);
unsigned int sluice_ring_sp_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n);
unsigned int sluice_ring_sc_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n);
void sluice_lpm_lookup_keys(const struct rte_lpm *lpm, const void *dsts, size_t stride,
			    uint16_t *next_hops, unsigned int n, uint16_t miss);
void sluice_lpm6_lookup_keys(const struct rte_lpm6 *lpm, const void *dsts, size_t stride,
			     uint16_t *next_hops, unsigned int n, uint16_t miss);
uint32_t sluice_hash_crc_words(const void *data, uint32_t data_len, uint32_t init_val);
void sluice_hash_crc_keys(const void *keys, uint32_t key_len, unsigned int n, uint32_t *hashes);
void sluice_rcu_qsbr_thread_online(struct rte_rcu_qsbr *v, unsigned int thread_id);
void sluice_rcu_qsbr_thread_offline(struct rte_rcu_qsbr *v, unsigned int thread_id);
void sluice_rcu_qsbr_quiescent(struct rte_rcu_qsbr *v, unsigned int thread_id);
rte_spinlock_t *sluice_memif_disconnect_lock(uint16_t port);
int sluice_interrupt_thread_barrier(unsigned int timeout_ms);
uint32_t sluice_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);
/* Called per packet, but only by the guard stage, which is not on a forwarding fast path. */
int sluice_meter_srtcm_check(struct rte_meter_srtcm *m, struct rte_meter_srtcm_profile *p,
			     uint64_t time, uint32_t len);
