/* serve.c — `siyu serve`: open the store, start HTTP, wait for SIGTERM/SIGINT,
 * then shut down in order: stop accepting and finish in-flight requests, drain
 * the writer, close the database. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "outbox/outbox.h"
#include "segment/segsvc.h"
#include "store/channel.h"
#include "store/groupchat.h"
#include "store/inherit.h"
#include "store/tag_wecom.h"
#include "store/transfer.h"
#include "sync/sync.h"
#include "util/log.h"
#include "wecom/wecom_client.h"

static void serve_usage(FILE *f) {
    fprintf(f, "usage: siyu serve [--data DIR] [--listen ADDR:PORT] [options]\n"
               "  Runs the HTTP API and the WeCom callback receiver on an embedded SQLite\n"
               "  database in DIR (created if missing). Stops cleanly on SIGTERM or SIGINT.\n\n");
    config_usage(f);
}

int cli_serve(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            serve_usage(stdout);
            return 0;
        }
    siyu_config cfg;
    siyu_err err = {0};
    if (config_load(&cfg, argc, argv, &err) != 0) {
        fprintf(stderr, "siyu serve: %s\n", err.msg);
        return 2;
    }
    log_set_level(log_level_parse(cfg.log_level));
    /* Block the signals in every thread; this one waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    siyu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return 1;
    int rc = 1;
    channel_sched *chs = NULL;
    ctx->replay_window = cfg.replay_window;
    store_options so = {.writer_thread = true, .batch_max = cfg.batch_max,
                        .queue_max = cfg.queue_max, .readers_max = cfg.threads * 2 + 2};
    ctx->st = store_open(cfg.data, &so, &err);
    if (!ctx->st) goto fail;
    /* Segment engines: built before anything else writes, then kept current
     * by the writer (segment/segsvc.h). */
    if (segsvc_open(ctx->st, &ctx->seg, &err) != 0) goto fail;
    wecom_client_opts wo = {.base_url = cfg.wecom_base_url, .timeout_ms = cfg.wecom_timeout_ms,
                             .retries = cfg.wecom_retries ? cfg.wecom_retries : -1};
    if (!ctx->wc) ctx->wc = wecom_client_new(&wo, &err);
    if (!ctx->wc) goto fail;
    outbox_opts oo = {.workers = cfg.outbox_workers, .max_attempts = cfg.outbox_max_attempts};
    /* Modules that listen to delivery results (outbox_on_result) register
     * between outbox_new and outbox_run, before any row is delivered. */
    ctx->ob = outbox_new(ctx->st, ctx->wc, &oo, &err);
    if (!ctx->ob || outbox_run(ctx->ob, &err) != 0) goto fail;
    /* Domain listeners for outbox answers. */
    tag_wecom_listen(ctx);
    transfer_listen(ctx);
    inherit_listen(ctx);
    groupchat_listen(ctx);
    channel_listen(ctx);
    sync_mgr_opts syo = {.interval_s = cfg.sync_interval,
                         .transfer_poll_s = cfg.transfer_poll,
                         .transfer_poll_age_s = cfg.transfer_poll_age};
    ctx->sync = sync_mgr_start(ctx->st, ctx->wc, &syo, &err);
    if (!ctx->sync) goto fail;
    if (cfg.channel_roster_interval > 0 &&
        !(chs = channel_sched_start(ctx, cfg.channel_roster_interval, &err)))
        goto fail;
    http_options ho = {.listen = cfg.listen, .threads = cfg.threads,
                       .max_body = (size_t)cfg.max_body};
    ctx->http = http_server_start(ctx, api_all_routes, &ho, &err);
    if (!ctx->http) goto fail;
    char host[128];
    snprintf(host, sizeof host, "%s", cfg.listen);
    char *colon = strrchr(host, ':');
    if (colon) *colon = 0;
    log_info("listening on http://%s:%d data=%s threads=%d", host, http_server_port(ctx->http),
             cfg.data, cfg.threads);
    /* A machine-readable line for scripts and tests. */
    printf("siyu: listening on %s:%d\n", host, http_server_port(ctx->http));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("signal %d: shutting down", sig);
    rc = 0;
    goto done;
fail:
    log_error("%s", err.msg);
done:
    http_server_stop(ctx->http);
    channel_sched_stop(chs);  /* before the outbox it kicks */
    sync_mgr_stop(ctx->sync); /* after HTTP: no callback notifies any more */
    outbox_stop(ctx->ob);     /* in-flight deliveries finish and record first */
    segsvc_close(ctx->seg);   /* before the store: it drops its triggers there */
    store_close(ctx->st);
    wecom_client_free(ctx->wc);
    free(ctx);
    if (rc == 0) log_info("stopped");
    return rc;
}
