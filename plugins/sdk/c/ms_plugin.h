/*
 * MemoryStreamer plugin ABI, version 1, for C guests.
 *
 * Build a plugin with Debian's clang-14 and lld-14 (wasm-ld):
 *
 *   clang-14 --target=wasm32 -O2 -nostdlib -ffreestanding -fuse-ld=wasm-ld-14 \
 *       -Wl,--no-entry -Wl,--strip-all -I plugins/sdk/c -o plugin.wasm plugin.c
 *
 * The definition the host and the Rust SDK share is plugins/abi/src/lib.rs;
 * docs/plugins.md describes every field. This header restates it for C,
 * and plugins/sdk/c/check.c (compiled by ci/plugins.sh) checks the layout
 * at compile time.
 */
#ifndef MS_PLUGIN_H
#define MS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define MS_ABI_VERSION 1
#define MS_BATCH_MAX 256
#define MS_PAYLOAD_MAX 1428
#define MS_REWRITE_GROWTH_MAX 64
#define MS_EMITS_PER_BATCH_MAX 64
#define MS_COUNTERS_MAX 8
#define MS_LOG_LINE_MAX 256
#define MS_RECORD_HEADER_LEN 32
/* Bytes a record with `room` payload bytes takes, padding included. */
#define MS_RECORD_LEN(room) ((MS_RECORD_HEADER_LEN + (room) + 7) & ~7)
#define MS_BUFFER_LEN (MS_BATCH_MAX * MS_RECORD_LEN(MS_PAYLOAD_MAX))

/* Verdicts. */
enum { MS_PASS = 0, MS_DROP = 1, MS_ROUTE = 2 };

/* emit's answers. */
enum { MS_EMIT_ACCEPTED = 0, MS_EMIT_FULL = 1, MS_EMIT_INVALID = 2 };

/* Log levels. */
enum { MS_LOG_ERROR = 0, MS_LOG_WARN = 1, MS_LOG_INFO = 2, MS_LOG_DEBUG = 3 };

/* One message of a batch, as the host lays it out in the buffer. */
typedef struct ms_record {
    uint64_t stream;     /* host */
    uint64_t route;      /* guest: the target of MS_ROUTE */
    uint16_t len;        /* both: the payload's length, at most room */
    uint16_t room;       /* host: bytes reserved for the payload */
    uint8_t class_;      /* host: 0..3 */
    uint8_t verdict;     /* guest: MS_PASS on entry */
    uint8_t zero[2];
    uint64_t arrival_ns; /* host */
    uint8_t payload[];   /* room bytes */
} ms_record;

_Static_assert(sizeof(ms_record) == MS_RECORD_HEADER_LEN, "the record header is 32 bytes");
_Static_assert(offsetof(ms_record, len) == 16 && offsetof(ms_record, room) == 18, "lengths at 16 and 18");
_Static_assert(offsetof(ms_record, class_) == 20 && offsetof(ms_record, verdict) == 21, "class and verdict at 20 and 21");
_Static_assert(offsetof(ms_record, arrival_ns) == 24, "arrival at 24");

/* The record after `r`. */
static inline ms_record *ms_next(ms_record *r) {
    return (ms_record *)((uint8_t *)r + MS_RECORD_LEN(r->room));
}

/* The host's imports (module "ms"). */
#define MS_IMPORT(name) __attribute__((import_module("ms"), import_name(name)))
MS_IMPORT("emit") int32_t ms_emit(int64_t stream, int32_t class_, const void *payload, int32_t len);
MS_IMPORT("log") void ms_log(int32_t level, const char *line, int32_t len);
MS_IMPORT("counter_add") void ms_counter_add(int32_t id, int64_t delta);
MS_IMPORT("now") int64_t ms_now(void);

/* Marks a function as one of the module's exports (see docs/plugins.md). */
#define MS_EXPORT(name) __attribute__((export_name(name)))

/* The shared buffer; MS_DEFINE_BUFFER() defines it and ms_buffer. */
#define MS_DEFINE_BUFFER()                                                   \
    static _Alignas(8) uint8_t ms_shared_buffer[MS_BUFFER_LEN];             \
    MS_EXPORT("ms_buffer") int32_t ms_buffer(void) {                        \
        return (int32_t)(uintptr_t)ms_shared_buffer;                         \
    }                                                                        \
    MS_EXPORT("ms_abi_version") int32_t ms_abi_version(void) {              \
        return MS_ABI_VERSION;                                               \
    }

#endif
