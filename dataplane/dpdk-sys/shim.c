/* C shims for DPDK macros that have no symbol (see wrapper.h). */
#include "wrapper.h"

int ms_rte_errno(void) { return rte_errno; }
