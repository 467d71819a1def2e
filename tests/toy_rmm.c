/*
 * A toy RMM behind ccasim's external RMM ABI (src/ccasim/diff/rmm_abi.h), for the tests of
 * `ccasim diff`: it implements RMI_VERSION and RMI_GRANULE_DELEGATE / UNDELEGATE as the spec
 * says, over the FVP's DRAM, and answers SMCCC_NOT_SUPPORTED to everything else.
 */
#include <stdlib.h>
#include <string.h>

#include "rmm_abi.h"

#define GRANULE 4096ULL
#define DRAM_BASE 0x80000000ULL
#define DRAM_TOP 0x100000000ULL
#define GRANULES ((DRAM_TOP - DRAM_BASE) / GRANULE)

#define RMI_VERSION 0xC4000150ULL
#define RMI_GRANULE_DELEGATE 0xC4000151ULL
#define RMI_GRANULE_UNDELEGATE 0xC4000152ULL
#define RMI_SUCCESS 0
#define RMI_ERROR_INPUT 1
#define NOT_SUPPORTED 0xFFFFFFFFFFFFFFFFULL

static unsigned char state[GRANULES];   /* 0 UNDELEGATED, 1 DELEGATED */
static unsigned char *memory[GRANULES]; /* contents, allocated when written */

uint32_t ccasim_rmm_abi_version(void) { return CCASIM_RMM_ABI_VERSION; }

void ccasim_rmm_reset(void)
{
	for (uint64_t i = 0; i < GRANULES; i++) {
		free(memory[i]);
		memory[i] = NULL;
	}
	memset(state, 0, sizeof(state));
}

static int granule(uint64_t pa, uint64_t *index)
{
	if (pa % GRANULE != 0 || pa < DRAM_BASE || pa >= DRAM_TOP)
		return -1;
	*index = (pa - DRAM_BASE) / GRANULE;
	return 0;
}

static void wipe(uint64_t i)
{
	free(memory[i]);
	memory[i] = NULL;
}

int ccasim_rmm_smc(const uint64_t in[8], uint64_t out[5])
{
	uint64_t i;

	memset(out, 0, 5 * sizeof(uint64_t));
	switch (in[0]) {
	case RMI_VERSION:
		out[0] = in[1] == 0x10000 ? RMI_SUCCESS : RMI_ERROR_INPUT;
		out[1] = out[2] = 0x10000;
		break;
	case RMI_GRANULE_DELEGATE:
		if (granule(in[1], &i) != 0 || state[i] != 0) {
			out[0] = RMI_ERROR_INPUT;
			break;
		}
		wipe(i);
		state[i] = 1;
		break;
	case RMI_GRANULE_UNDELEGATE:
		if (granule(in[1], &i) != 0 || state[i] != 1) {
			out[0] = RMI_ERROR_INPUT;
			break;
		}
		wipe(i);
		state[i] = 0;
		break;
	default:
		out[0] = NOT_SUPPORTED;
	}
	return 0;
}

static int access(uint64_t pa, uint64_t size, uint64_t *index)
{
	if (granule(pa & ~(GRANULE - 1), index) != 0 || (pa % GRANULE) + size > GRANULE)
		return -1;
	return state[*index] == 0 ? 0 : -1;
}

int ccasim_rmm_ns_read(uint64_t pa, void *buf, uint64_t size)
{
	uint64_t i;

	if (access(pa, size, &i) != 0)
		return -1;
	if (memory[i] == NULL)
		memset(buf, 0, size);
	else
		memcpy(buf, memory[i] + pa % GRANULE, size);
	return 0;
}

int ccasim_rmm_ns_write(uint64_t pa, const void *buf, uint64_t size)
{
	uint64_t i;

	if (access(pa, size, &i) != 0)
		return -1;
	if (memory[i] == NULL && (memory[i] = calloc(1, GRANULE)) == NULL)
		return -1;
	memcpy(memory[i] + pa % GRANULE, buf, size);
	return 0;
}

int ccasim_rmm_granule_state(uint64_t pa)
{
	uint64_t i;

	return granule(pa & ~(GRANULE - 1), &i) == 0 ? state[i] : 0;
}

int ccasim_rmm_rim(uint64_t rd, uint8_t rim[64])
{
	(void)rd;
	(void)rim;
	return 0;
}
