/* libFuzzer target for the status-file reader (gateway/gw_status:
 * gw_status_parse), which `fieldgate status` runs on a file that may be
 * truncated, corrupt or written by something else.
 *
 * Oracle: the parse returns one of its documented codes; on success every
 * node is reachable from the top value by gw_status_child/gw_status_next
 * without a cycle, every string is NUL-terminated inside the text, and the
 * lookups (get, get_str/num/bool) on every object never crash.  Anything
 * else aborts.
 *
 * Run: cmake -DFG_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; then
 *   build/tests/fuzz_status -max_len=4096 tests/fuzz/corpus/fuzz_status */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"
#include "gw_status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Walks v and its descendants; returns the nodes seen, or aborts on a
 * cycle (more nodes than the document has). */
static size_t walk(const struct gw_status_doc *doc,
                   const struct gw_status_node *v, size_t depth)
{
    if (depth > doc->n)
        abort();
    size_t seen = 1;
    if (v->type == GW_STATUS_STRING && !v->str)
        abort();
    if (v->str && strlen(v->str) > doc->len)
        abort();
    if (v->type == GW_STATUS_OBJECT) {
        (void)gw_status_get(doc, v, "units");
        (void)gw_status_get_str(doc, v, "state", "");
        (void)gw_status_get_num(doc, v, "pid", 0);
        (void)gw_status_get_bool(doc, v, "online", false);
    }
    for (const struct gw_status_node *e = gw_status_child(doc, v); e;
         e = gw_status_next(doc, e)) {
        if (v->type == GW_STATUS_OBJECT && !e->key)
            abort();
        seen += walk(doc, e, depth + 1);
        if (seen > doc->n)
            abort();
    }
    return seen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct gw_status_doc doc;
    memset(&doc, 0, sizeof(doc));
    int rc = gw_status_parse(text, size, &doc); /* takes text */
    if (rc == GW_OK) {
        if (doc.n == 0)
            abort();
        (void)walk(&doc, &doc.nodes[0], 0);
    } else if (rc != GW_EPARSE && rc != GW_ELIMIT && rc != GW_ENOMEM) {
        abort();
    }
    gw_status_doc_free(&doc);
    return 0;
}
