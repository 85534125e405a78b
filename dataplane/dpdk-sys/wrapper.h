/* Headers bindgen reads to generate ms-dpdk-sys. Everything here is
 * declarations; the shims for macros live in shim.c. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_bus_vdev.h>
#include <rte_eth_ring.h>

/* rte_errno is a thread-local macro; bindgen cannot see through it. */
int ms_rte_errno(void);

/* Offload and RSS flags are RTE_BIT64() macros, which libclang 14 does not
 * evaluate; re-export the ones we use as real constants. */
static const uint64_t MS_RTE_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t MS_RTE_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t MS_RTE_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint32_t MS_RTE_ETH_LINK_SPEED_AUTONEG = RTE_ETH_LINK_SPEED_AUTONEG;
static const uint64_t MS_RTE_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
static const uint64_t MS_RTE_ETH_RX_OFFLOAD_UDP_CKSUM = RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
static const uint64_t MS_RTE_MBUF_F_TX_IPV4 = RTE_MBUF_F_TX_IPV4;
static const uint64_t MS_RTE_MBUF_F_TX_UDP_CKSUM = RTE_MBUF_F_TX_UDP_CKSUM;
static const uint64_t MS_RTE_MBUF_F_RX_L4_CKSUM_MASK = RTE_MBUF_F_RX_L4_CKSUM_MASK;
static const uint64_t MS_RTE_MBUF_F_RX_L4_CKSUM_GOOD = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
