/*
 * DPDK's fast-path API is `static inline` in its headers, so there is no symbol for Rust to
 * link against. Each function here re-exports one of them unchanged: those called once per
 * burst or less (bulk alloc, free, append) or that read C thread-locals (lcore id, rte_errno).
 * RX/TX burst are written in Rust in lib.rs instead: an app polls idle queues far more often
 * than it moves a burst, and each poll through the shim cost a call (measured: ~7% of l2fwd's
 * rate on virtual ports). Per-packet accessors (mtod, rdtsc, pause) are in lib.rs too.
 */
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <rte_errno.h>
#include <rte_interrupts.h>
#include <rte_hash_crc.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_meter.h>
#include <rte_rcu_qsbr.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_spinlock.h>
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

/* One packet through a single-rate three-colour meter (RFC 2697), colour-blind; the guard
 * stage meters packets, not bytes, so it passes a length of 1. */
int sluice_meter_srtcm_check(struct rte_meter_srtcm *m, struct rte_meter_srtcm_profile *p,
			     uint64_t time, uint32_t len)
{
	return rte_meter_srtcm_color_blind_check(m, p, time, len);
}

/* A reader reports a quiescent state (no table references held) once per burst. */
void sluice_rcu_qsbr_quiescent(struct rte_rcu_qsbr *v, unsigned int thread_id)
{
	rte_rcu_qsbr_quiescent(v, thread_id);
}

/*
 * net_memif's disconnect, and the one lock that makes a burst safe from it.
 *
 * When its peer goes, DPDK 22.11's memif driver unmaps the connection's shared memory from
 * the EAL's interrupt thread (memif_disconnect, drivers/net/memif/memif_socket.c) while an
 * lcore may be inside an RX or TX burst reading it: the lcore dies of SIGSEGV. The driver
 * offers no event before the unmap (it raises no link-state interrupt) and no grace period.
 * Its disconnect does, in order: clear the CONNECTED flag, take and release the device's
 * control-channel lock `cc_lock`, unmap. So a burst taken under `cc_lock` is safe: either it
 * holds the lock first, and the unmap waits until it ends; or it takes the lock after the
 * disconnect released it, and then sees CONNECTED cleared (which every burst checks first)
 * and touches nothing. Nothing else takes the lock, and nothing else ever waits for it.
 *
 * The lock is inside the driver's private device data. Its place is worked out from DPDK
 * 22.11's own layouts (the heads of struct rte_eth_dev and rte_eth_dev_data in
 * lib/ethdev/ethdev_driver.h, of struct pmd_internals in drivers/net/memif/rte_eth_memif.h),
 * and every step is checked against what the public API says before the lock is trusted:
 * the device's RX function and queue array are those of rte_eth_fp_ops, its name is the
 * port's, and the driver data's role and socket are those of the port's device arguments.
 * Any mismatch gives NULL, and the caller polls unguarded (and says so).
 */
struct rte_eth_dev;
struct rte_eth_dev *rte_eth_dev_allocated(const char *name); /* ethdev's, INTERNAL */

struct sluice_eth_dev_head {
	void *fast_path[6]; /* rx_pkt_burst first */
	const struct sluice_eth_dev_data_head *data;
};

struct sluice_eth_dev_data_head {
	char name[RTE_ETH_NAME_MAX_LEN];
	void **rx_queues;
	void **tx_queues;
	uint16_t nb_rx_queues;
	uint16_t nb_tx_queues;
	struct {
		uint8_t active;
		uint8_t nb_q_per_pool;
		uint16_t def_vmdq_idx;
		uint16_t def_pool_q_idx;
	} sriov;
	void *dev_private;
};

struct sluice_memif_internals_head {
	uint32_t id;
	int role; /* 0 server, 1 client */
	uint32_t flags;
	char *socket_filename;
	char secret[24];
	void *cc;
	rte_spinlock_t cc_lock;
};

/* The value of `key=` in a device's arguments (`role=client,socket=/x.sock`), into `out`. */
static int devarg_value(const char *args, const char *key, char *out, size_t size)
{
	size_t len = strlen(key);
	for (const char *at = args; at != NULL && *at != '\0';) {
		const char *end = strchr(at, ',');
		size_t field = end != NULL ? (size_t)(end - at) : strlen(at);
		if (field > len && strncmp(at, key, len) == 0 && at[len] == '=') {
			size_t value = field - len - 1;
			if (value >= size)
				return -1;
			memcpy(out, at + len + 1, value);
			out[value] = '\0';
			return 0;
		}
		at = end != NULL ? end + 1 : NULL;
	}
	return -1;
}

rte_spinlock_t *sluice_memif_disconnect_lock(uint16_t port)
{
	struct rte_eth_dev_info info;
	char name[RTE_ETH_NAME_MAX_LEN], role[16] = "server", socket[4096] = "/run/memif.sock";
	if (rte_eth_dev_info_get(port, &info) != 0 || info.driver_name == NULL ||
	    strcmp(info.driver_name, "net_memif") != 0 || info.device == NULL)
		return NULL;
	if (rte_eth_dev_get_name_by_port(port, name) != 0)
		return NULL;
	const struct sluice_eth_dev_head *dev = (const void *)rte_eth_dev_allocated(name);
	if (dev == NULL || dev->fast_path[0] != (void *)rte_eth_fp_ops[port].rx_pkt_burst ||
	    dev->data == NULL || dev->data->rx_queues != rte_eth_fp_ops[port].rxq.data ||
	    strncmp(dev->data->name, name, sizeof(name)) != 0 || dev->data->dev_private == NULL)
		return NULL;
	const struct rte_devargs *devargs = rte_dev_devargs(info.device);
	const char *args = devargs != NULL ? devargs->args : NULL;
	devarg_value(args, "role", role, sizeof(role));
	devarg_value(args, "socket", socket, sizeof(socket));
	struct sluice_memif_internals_head *pmd = dev->data->dev_private;
	/* As the driver reads it (memif_set_role). */
	int client = strstr(role, "client") != NULL || strstr(role, "slave") != NULL;
	if (pmd->role != client || pmd->socket_filename == NULL ||
	    strncmp(pmd->socket_filename, socket, sizeof(socket)) != 0)
		return NULL;
	return &pmd->cc_lock;
}

/*
 * A barrier with the EAL's interrupt thread: returns once that thread has gone round its loop
 * again, having rebuilt its list of interrupt sources if asked to (which each register or
 * unregister asks), or after `timeout_ms`. Returns 0, or -1 on timeout or error.
 *
 * Why: closing a net_memif server port frees its listener's interrupt handle while leaving it
 * among the thread's sources (memif_socket_remove_device, DPDK 22.11), and every pass of the
 * thread over its sources reads each handle. Until rte_eal_cleanup unmaps hugepage memory the
 * stale read is harmless; after it, it is a SIGSEGV, which a pass still pending from the
 * ports' own unregistering (late on a loaded machine) met at exit. Waiting here, after the
 * ports are closed and before cleanup, leaves no pass pending.
 *
 * The barrier's own source is registered once and never unregistered (an unregister would ask
 * for one more pass), with a handle from the C heap, which cleanup leaves mapped.
 */
static int barrier_fd = -1;
static int barrier_passed;

static void barrier_callback(void *arg __rte_unused)
{
	uint64_t count;
	if (read(barrier_fd, &count, sizeof(count)) < 0)
		return;
	__atomic_store_n(&barrier_passed, 1, __ATOMIC_RELEASE);
}

int sluice_interrupt_thread_barrier(unsigned int timeout_ms)
{
	if (barrier_fd < 0) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		struct rte_intr_handle *handle = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
		if (fd < 0 || handle == NULL || rte_intr_fd_set(handle, fd) != 0 ||
		    rte_intr_type_set(handle, RTE_INTR_HANDLE_EXT) != 0)
			return -1;
		barrier_fd = fd;
		if (rte_intr_callback_register(handle, barrier_callback, NULL) != 0)
			return -1;
	}
	__atomic_store_n(&barrier_passed, 0, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(barrier_fd, &one, sizeof(one)) != sizeof(one))
		return -1;
	for (unsigned int waited_us = 0; waited_us < timeout_ms * 1000; waited_us += 100) {
		if (__atomic_load_n(&barrier_passed, __ATOMIC_ACQUIRE))
			return 0;
		rte_delay_us_sleep(100);
	}
	return -1;
}
