/*
 * ccasim_rmm ABI, version 1: an RMM that `ccasim diff` can compare with another.
 *
 * Build your RMM's host build (for example TF-RMM's fake_host) as a shared library that
 * exports these functions, then:  ccasim diff --a spec --b ./librmm.so
 *
 * Physical addresses are those of the Arm FVP memory map: DRAM at 0x80000000-0xffffffff
 * (2 GiB) is delegable and in the Non-secure PAS after a reset; an address elsewhere is not
 * delegable. Granules are 4 KiB. All calls come from one thread.
 */
#ifndef CCASIM_RMM_ABI_H
#define CCASIM_RMM_ABI_H

#include <stdint.h>

#define CCASIM_RMM_ABI_VERSION 1

/* The ABI version this library implements: CCASIM_RMM_ABI_VERSION. */
uint32_t ccasim_rmm_abi_version(void);

/* Back to the state after boot: every granule UNDELEGATED and NS, DRAM zero, no realm. */
void ccasim_rmm_reset(void);

/*
 * An SMC from the Normal world. in[0] is X0 (the FID), in[1..7] are X1..X7.
 * On return out[0..4] hold X0..X4. Returns 0, or non-zero if the RMM stopped (an assertion,
 * a crash): the SMC did not return, and later calls are not made.
 */
int ccasim_rmm_smc(const uint64_t in[8], uint64_t out[5]);

/* Normal-world accesses: 0, or non-zero if the access faults (a granule not in the NS PAS). */
int ccasim_rmm_ns_read(uint64_t pa, void *buf, uint64_t size);
int ccasim_rmm_ns_write(uint64_t pa, const void *buf, uint64_t size);

/*
 * The RMM's state of the granule at pa (RmmGranuleState, C1.7):
 * 0 UNDELEGATED, 1 DELEGATED, 2 RD, 3 REC, 4 REC_AUX, 5 DATA, 6 RTT.
 */
int ccasim_rmm_granule_state(uint64_t pa);

/* The RIM of the realm whose RD is at rd into rim[]: its length (32 or 64), or 0 if none. */
int ccasim_rmm_rim(uint64_t rd, uint8_t rim[64]);

#endif /* CCASIM_RMM_ABI_H */
