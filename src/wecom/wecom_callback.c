/* wecom_callback.c — the WeCom callback receiver: GET /wecom/callback/{tenant}
 * (URL verification) and POST /wecom/callback/{tenant} (events).
 *
 * Request lifecycle (everything before the write runs on the HTTP thread):
 *
 *   cb_begin()   tenant id, callback config (read conn), query params,
 *                optional replay window, wecom_crypto_init
 *      │ GET:  wecom_verify_decrypt(echostr) ──> 200 text/plain = plaintext
 *      │ POST: wecom_envelope_parse ─> wecom_verify_decrypt ─> wecom_event_parse
 *      │       ─> dedupe key + props ─http_write(callback_step)─> post_done()
 *      │       ─> 200, empty body (after commit; also for a duplicate)
 *      │       callback_step = ingest_wecom_step + welcome_on_event (a new contact
 *      │       with a WelcomeCode queues send_welcome_msg in the same commit);
 *      │       post_done kicks the outbox's urgent lane when it did
 *      └─ any check fails: reject() ─http_write(reject_step: audit row)─>
 *                          reject_done() ─> 400/413 {"error":{code,message,field}}
 *
 * Unknown tenants (or tenants without callback config) get 404 and no audit
 * row (there is no tenant to audit for). A rejected callback
 * writes nothing but its audit row (actor "wecom", action "callback.rejected",
 * detail = the reason code) and counts in ctx->cb_rejected; accepted ones
 * count in ctx->cb_by_kind[kind], retries in ctx->cb_duplicate.
 *
 * Secrets (token, EncodingAESKey) live in a stack wecom_crypto that is wiped
 * before the handler returns; they never reach a reply or a log line.
 *
 * Ownership: a cb_op hangs on r->user (freed by cb_op_free with the request);
 * it owns the decrypted message, the parsed event and the props string. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "ingest/ingest_wecom.h"
#include "outbox/outbox.h"
#include "outbox/welcome.h"
#include "store/audit.h"
#include "store/tenant.h"
#include "util/log.h"
#include "wecom/wecom_crypto.h"
#include "wecom/wecom_event.h"

#define CB_MAX_BODY (256u << 10)

typedef struct cb_op {
    int64_t tenant_id;
    /* accepted POST */
    char *msg; /* decrypted plaintext */
    wecom_event ev;
    char *props;
    char key[INGEST_DEDUPE_KEY_SIZE];
    ingest_wecom_cmd cmd;
    int64_t welcome_id; /* outbox row queued for a welcome, 0 = none */
    /* rejection */
    int status;
    const char *code;  /* static */
    const char *field; /* static, may be NULL */
    char message[256];
    char target[16];
} cb_op;

typedef struct cb_params {
    int64_t tenant_id;
    const char *sig, *ts, *nonce;
    wecom_crypto cr;
} cb_params;

static void cb_op_free(void *p) {
    cb_op *op = p;
    if (!op) return;
    free(op->msg);
    free(op->props);
    wecom_event_reset(&op->ev);
    free(op);
}

static cb_op *cb_op_new(http_req *r, int64_t tenant_id) {
    cb_op *op = calloc(1, sizeof *op);
    if (!op) return NULL;
    op->tenant_id = tenant_id;
    wecom_event_reset(&op->ev);
    r->user = op;
    r->user_free = cb_op_free;
    return op;
}

static void reply_error(http_resp *w, int status, const char *code, const char *field,
                        const char *msg) {
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (e && field) json_object_set_new(e, "field", json_string(field));
    http_json(w, status, json_pack("{s:o}", "error", e));
}

/* 200 text/plain with exactly len bytes. The body buffer is always
 * allocated, even when empty: http.c's send_resp frees a static "" when
 * w->body is NULL (reported), so an empty reply must not leave it NULL. */
static void reply_text(http_resp *w, const char *text, size_t len) {
    char *b = malloc(len + 1);
    if (!b) {
        reply_error(w, 503, "internal", NULL, "out of memory");
        return;
    }
    if (len) memcpy(b, text, len);
    b[len] = 0;
    free(w->body);
    w->status = 200;
    w->content_type = "text/plain";
    w->body = b;
    w->len = len;
}

/* ---- rejections --------------------------------------------------------- */

static int reject_step(store_conn *c, void *arg) {
    cb_op *op = arg;
    return store_audit(c, op->tenant_id, "wecom", "callback.rejected", op->target, 1, op->code);
}

static void reject_done(http_req *r, http_resp *w, int rc) {
    cb_op *op = r->user;
    if (rc != 0)
        log_error("wecom callback: tenant=%lld audit of a rejection failed: %s",
                  (long long)op->tenant_id, siyu_strerror(rc));
    reply_error(w, op->status, op->code, op->field, op->message);
}

/* Counts, logs and audits a rejected callback of a known tenant, then
 * replies status/code. code and field must be static strings. */
static void reject(http_req *r, http_resp *w, int64_t tenant_id, int status, const char *code,
                   const char *field, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void reject(http_req *r, http_resp *w, int64_t tenant_id, int status, const char *code,
                   const char *field, const char *fmt, ...) {
    atomic_fetch_add(&r->ctx->cb_rejected, 1);
    log_warn("wecom callback rejected: tenant=%lld method=%s reason=%s", (long long)tenant_id,
             r->method, code);
    cb_op *op = r->user ? r->user : cb_op_new(r, tenant_id);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!op) {
        reply_error(w, status, code, field, msg);
        return;
    }
    op->status = status;
    op->code = code;
    op->field = field;
    snprintf(op->message, sizeof op->message, "%s", msg);
    snprintf(op->target, sizeof op->target, "callback:%s", r->method);
    http_write(r, w, reject_step, op, reject_done);
}

/* What a WECOM_E_* failure is called in replies and the audit log. */
static const struct cb_reason {
    int rc;
    int status;
    const char *code;
    bool cipher_field; /* the field is the ciphertext (Encrypt / echostr) */
    const char *msg;
} cb_reasons[] = {
    {WECOM_E_SIGNATURE, 400, "invalid_signature", false,
     "msg_signature does not match token, timestamp, nonce and ciphertext"},
    {WECOM_E_PARSE_XML, 400, "invalid_xml", false,
     "the body is not a well-formed callback envelope with one Encrypt element"},
    {WECOM_E_RECEIVEID, 400, "invalid_receiveid", true,
     "the message is addressed to another corp id than this tenant's"},
    {WECOM_E_DECODE_BASE64, 400, "invalid_base64", true, "the ciphertext is not valid Base64"},
    {WECOM_E_DECRYPT_AES, 400, "invalid_ciphertext", true,
     "the ciphertext length is not a multiple of the AES block size"},
    {WECOM_E_ILLEGAL_BUFFER, 400, "invalid_plaintext", true,
     "the decrypted buffer is malformed (padding or length field)"},
    {WECOM_E_INVALID_ARG, 400, "invalid_request", false, "a callback parameter is malformed"},
    {WECOM_E_TOO_LARGE, 413, "too_large", true, "the ciphertext exceeds the size limit"},
};

static void reject_wecom(http_req *r, http_resp *w, int64_t tenant_id, int rc,
                         const char *cipher_field) {
    for (size_t i = 0; i < sizeof cb_reasons / sizeof *cb_reasons; i++) {
        const struct cb_reason *x = &cb_reasons[i];
        if (x->rc != rc) continue;
        const char *field = x->cipher_field           ? cipher_field
                            : rc == WECOM_E_SIGNATURE ? "msg_signature"
                            : rc == WECOM_E_PARSE_XML ? "body"
                                                      : NULL;
        reject(r, w, tenant_id, x->status, x->code, field, "%s", x->msg);
        return;
    }
    log_error("wecom callback: tenant=%lld internal failure %d", (long long)tenant_id, rc);
    reply_error(w, rc == WECOM_E_NOMEM ? 503 : 500, "internal", NULL,
                "the callback could not be processed");
}

/* ---- common checks ------------------------------------------------------ */

static int config_load(http_req *r, int64_t tenant_id, tenant_callback *cfg) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) return SIYU_EIO;
    int rc = tenant_callback_load(c, tenant_id, cfg);
    store_reader_release(r->ctx->st, c);
    return rc;
}

/* With a replay window, timestamp must be decimal seconds within it of now. */
static bool replay_ok(http_req *r, http_resp *w, const cb_params *p) {
    int window = r->ctx->replay_window;
    if (window <= 0) return true;
    char *end = NULL;
    long long ts = strtoll(p->ts, &end, 10);
    if (!*p->ts || *end || p->ts[0] == '-' || p->ts[0] == '+' || p->ts[0] == ' ') {
        reject(r, w, p->tenant_id, 400, "invalid_timestamp", "timestamp",
               "timestamp must be decimal Unix seconds");
        return false;
    }
    long long d = ts - (long long)siyu_now();
    if (d > window || d < -window) {
        reject(r, w, p->tenant_id, 400, "stale_timestamp", "timestamp",
               "timestamp is more than %d seconds away from the server's clock", window);
        return false;
    }
    return true;
}

/* Required query parameters; extra may name one more (echostr). */
static bool params_ok(http_req *r, http_resp *w, cb_params *p, const char *extra) {
    p->sig = http_query(r, "msg_signature");
    p->ts = http_query(r, "timestamp");
    p->nonce = http_query(r, "nonce");
    const char *missing = !p->sig                          ? "msg_signature"
                          : !p->ts                         ? "timestamp"
                          : !p->nonce                      ? "nonce"
                          : extra && !http_query(r, extra) ? extra
                                                           : NULL;
    if (missing) {
        reject(r, w, p->tenant_id, 400, "missing_param", missing,
               "query parameter '%s' is required", missing);
        return false;
    }
    return replay_ok(r, w, p);
}

/* Tenant, config, parameters, crypto context. On false the reply is set
 * (and p->cr holds no key). */
static bool cb_begin(http_req *r, http_resp *w, cb_params *p, const char *extra) {
    memset(p, 0, sizeof *p);
    if (!http_param_id(r, w, 0, &p->tenant_id)) {
        atomic_fetch_add(&r->ctx->cb_rejected, 1);
        return false;
    }
    tenant_callback cfg;
    int rc = config_load(r, p->tenant_id, &cfg);
    if (rc == SIYU_ENOTFOUND) {
        atomic_fetch_add(&r->ctx->cb_rejected, 1);
        reply_error(w, 404, "not_found", NULL, "no callback receiver is configured here");
        return false;
    }
    if (rc != 0) {
        reply_error(w, 503, "unavailable", NULL, "store unavailable");
        return false;
    }
    bool ok = params_ok(r, w, p, extra);
    if (ok && wecom_crypto_init(&p->cr, cfg.token, cfg.aes_key, cfg.corp_id) != WECOM_OK) {
        log_error("wecom callback: tenant=%lld has an unusable callback config",
                  (long long)p->tenant_id);
        reply_error(w, 500, "callback_config_invalid", NULL,
                    "this tenant's callback configuration is unusable");
        ok = false;
    }
    memset(&cfg, 0, sizeof cfg);
    return ok;
}

/* ---- GET: URL verification ---------------------------------------------- */

static void callback_verify(http_req *r, http_resp *w) {
    cb_params p;
    if (!cb_begin(r, w, &p, "echostr")) return;
    const char *echostr = http_query(r, "echostr");
    char *msg = NULL;
    size_t len = 0;
    int rc =
        wecom_verify_decrypt(&p.cr, p.sig, p.ts, p.nonce, echostr, strlen(echostr), &msg, &len);
    wecom_crypto_reset(&p.cr);
    if (rc != WECOM_OK) {
        reject_wecom(r, w, p.tenant_id, rc, "echostr");
        return;
    }
    reply_text(w, msg, len);
    free(msg);
}

/* ---- POST: events ------------------------------------------------------- */

/* The write step of an accepted callback: apply it, then (unless it is a
 * retry) queue its welcome message in the same transaction. */
static int callback_step(store_conn *c, void *arg) {
    cb_op *op = arg;
    int rc = ingest_wecom_step(c, &op->cmd);
    if (rc != 0 || op->cmd.result.duplicate) return rc;
    return welcome_on_event(c, op->tenant_id, &op->ev, op->cmd.result.event_id, &op->welcome_id);
}

static void post_done(http_req *r, http_resp *w, int rc) {
    cb_op *op = r->user;
    if (rc != 0) {
        log_error("wecom callback: tenant=%lld kind=%s not stored: %s", (long long)op->tenant_id,
                  wecom_event_kind_name(op->ev.kind), siyu_strerror(rc));
        siyu_err e = {0};
        siyu_err_set(&e, rc, NULL, "the callback could not be stored; retry later");
        http_error_err(w, &e);
        return;
    }
    if (op->cmd.result.duplicate)
        atomic_fetch_add(&r->ctx->cb_duplicate, 1);
    else if ((int)op->ev.kind < CB_KIND_MAX)
        atomic_fetch_add(&r->ctx->cb_by_kind[op->ev.kind], 1);
    if (op->welcome_id) outbox_kick(r->ctx->ob, OUTBOX_LANE_URGENT);
    reply_text(w, "", 0);
}

/* Decrypts and parses the body into op. On false the reply is set. */
static bool post_decode(http_req *r, http_resp *w, cb_params *p, cb_op *op) {
    char *enc = NULL;
    size_t enc_len = 0;
    int rc = wecom_envelope_parse(r->body, r->body_len, &enc, &enc_len, NULL, 0);
    if (rc == WECOM_OK) {
        size_t len = 0;
        rc = wecom_verify_decrypt(&p->cr, p->sig, p->ts, p->nonce, enc, enc_len, &op->msg, &len);
        free(enc);
        if (rc == WECOM_OK) {
            char why[160] = "";
            rc = wecom_event_parse(op->msg, len, &op->ev, why, sizeof why);
            if (rc == WECOM_E_PARSE_XML) {
                reject(r, w, p->tenant_id, 400, "invalid_event_xml", "Encrypt",
                       "the decrypted event is not valid callback XML: %s", why);
                return false;
            }
            if (rc == WECOM_OK) ingest_wecom_dedupe_key(op->ev.create_time, op->msg, len, op->key);
        }
    }
    if (rc != WECOM_OK) {
        reject_wecom(r, w, p->tenant_id, rc, "Encrypt");
        return false;
    }
    return true;
}

static void callback_event(http_req *r, http_resp *w) {
    cb_params p;
    if (!cb_begin(r, w, &p, NULL)) return;
    cb_op *op = cb_op_new(r, p.tenant_id);
    bool ok = op && post_decode(r, w, &p, op);
    wecom_crypto_reset(&p.cr);
    if (!op) reply_error(w, 503, "internal", NULL, "out of memory");
    if (!ok) return;
    op->props = ingest_wecom_props(&op->ev);
    if (!op->props || !op->key[0]) {
        reply_error(w, 503, "internal", NULL, "out of memory");
        return;
    }
    op->cmd = (ingest_wecom_cmd){
        .tenant_id = p.tenant_id, .ev = &op->ev, .dedupe_key = op->key, .props = op->props};
    http_write(r, w, callback_step, op, post_done);
}

const http_route wecom_callback_routes[] = {
    {"GET", "/wecom/callback/{tenant}", callback_verify, ROLE_PUBLIC,
     "WeCom callback URL verification: verifies msg_signature, decrypts echostr and returns it "
     "as text/plain",
     0},
    {"POST", "/wecom/callback/{tenant}", callback_event, ROLE_PUBLIC,
     "WeCom callback events (XML envelope): verified, decrypted and applied idempotently; 200 "
     "with an empty body once durable",
     CB_MAX_BODY, "application/xml"},
    {NULL, NULL, NULL, 0, NULL, 0},
};
