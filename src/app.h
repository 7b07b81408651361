/* app.h — the context passed to every handler: the store, config, counters.
 * Owned by `siyu serve` (cli/serve.c); lives as long as the server. */
#ifndef SIYU_APP_H
#define SIYU_APP_H

#include <stdatomic.h>

#include "http/http.h"
#include "store/store.h"

#define SIYU_VERSION "0.1.0"
#define CB_KIND_MAX 32

struct wecom_client;
struct outbox;
struct sync_mgr;
struct segsvc;

struct siyu_ctx {
    store *st;
    http_server *http;
    /* callbacks by wecom_event_kind, plus rejected/duplicate counters */
    atomic_long cb_by_kind[CB_KIND_MAX];
    atomic_long cb_rejected;
    atomic_long cb_duplicate;
    atomic_long events_accepted;
    int replay_window; /* seconds; 0 = no timestamp check */
    struct wecom_client *wc; /* outbound WeCom API client (wecom/wecom_client.h) */
    struct outbox *ob;       /* outbox delivery workers (outbox/outbox.h); NULL = not started */
    struct sync_mgr *sync;   /* periodic and on-demand full sync (sync/sync.h); NULL = not started */
    struct segsvc *seg;      /* segment engines (segment/segsvc.h); NULL = not started */
};

#endif
