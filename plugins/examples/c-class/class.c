/*
 * A C plugin: drops messages whose class is below `min_class` (0..3,
 * configuration `min_class=N`, default 1). Counter 0 counts the drops.
 * Built by ci/plugins.sh with clang-14 and wasm-ld-14.
 */
#include "ms_plugin.h"

MS_DEFINE_BUFFER()

static int32_t min_class = 1;

/* Reads `min_class=N` from the key=value lines at the buffer's start. */
static int32_t configure(int32_t len) {
    static const char key[] = "min_class=";
    int32_t value = 1;
    for (int32_t at = 0; at < len;) {
        int32_t k = 0;
        while (key[k] && at + k < len && ms_shared_buffer[at + k] == (uint8_t)key[k]) {
            k++;
        }
        if (!key[k]) {
            if (at + k >= len || ms_shared_buffer[at + k] < '0' || ms_shared_buffer[at + k] > '3') {
                return 1; /* a bad configuration */
            }
            value = ms_shared_buffer[at + k] - '0';
        }
        while (at < len && ms_shared_buffer[at] != '\n') {
            at++;
        }
        at++;
    }
    min_class = value;
    return 0;
}

MS_EXPORT("ms_init") int32_t ms_init(int32_t len) { return configure(len); }
MS_EXPORT("ms_on_config") int32_t ms_on_config(int32_t len) { return configure(len); }
MS_EXPORT("ms_start") int32_t ms_start(void) { return 0; }
MS_EXPORT("ms_drain") int32_t ms_drain(void) { return 0; }
MS_EXPORT("ms_snapshot_state") int32_t ms_snapshot_state(void) { return 0; }
MS_EXPORT("ms_restore_state") int32_t ms_restore_state(int32_t len) { return 0; }
MS_EXPORT("ms_stop") int32_t ms_stop(void) { return 0; }

MS_EXPORT("ms_on_batch") int32_t ms_on_batch(int32_t count) {
    ms_record *r = (ms_record *)ms_shared_buffer;
    for (int32_t i = 0; i < count; i++, r = ms_next(r)) {
        if (r->class_ < min_class) {
            r->verdict = MS_DROP;
            ms_counter_add(0, 1);
        }
    }
    return 0;
}
