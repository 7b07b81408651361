/* tag_wecom.c — outbox producers for WeCom corp tags (see tag_wecom.h).
 *
 * Every producer runs inside the caller's write step and only reads the
 * rows it needs (group source, wecom ids, names) before enqueueing: the
 * domain change and its outbox row commit together or not at all.
 *
 * Ownership: request bodies are built and freed here (outbox_enqueue copies
 * them into the row). */
#include "store/tag_wecom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "outbox/outbox.h"
#include "util/log.h"
#include "util/utf8.h"

static int enqueue(store_conn *c, int64_t tenant, const char *kind, json_t *body, int lane,
                   const char *actor, const char *ref, unsigned *kick, siyu_err *err) {
    if (!body) return SIYU_ENOMEM;
    char origin[64];
    snprintf(origin, sizeof origin, "%s:%s", kind, actor ? actor : "system");
    outbox_item it = {.tenant_id = tenant,
                      .kind = kind,
                      .body = body,
                      .lane = lane,
                      .origin = origin,
                      .ref = ref};
    int rc = outbox_enqueue(c, &it, NULL, err);
    json_decref(body);
    if (rc == 0 && kick) *kick |= 1u << lane;
    return rc;
}

int tag_wecom_group_is(store_conn *c, int64_t tenant, int64_t group_id, bool *yes) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT source='wecom' FROM tag_group WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, group_id);
    int rc = sqlite3_step(st);
    *yes = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

/* A tag with its group: names, wecom ids, whether the group is WeCom's. */
typedef struct tag_info {
    bool found, wecom;
    int64_t group_id;
    char name[160], group_name[160], wecom_id[96], group_wecom_id[96];
} tag_info;

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t cap) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", s ? s : "");
}

static int tag_info_load(store_conn *c, int64_t tenant, int64_t tag_id, tag_info *ti) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT t.group_id, t.name, t.wecom_id, g.name, g.wecom_id, g.source='wecom' "
           "FROM tag t JOIN tag_group g ON g.id=t.group_id WHERE t.tenant_id=?1 AND t.id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, tag_id);
    memset(ti, 0, sizeof *ti);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        ti->found = true;
        ti->group_id = sqlite3_column_int64(st, 0);
        copy_col(st, 1, ti->name, sizeof ti->name);
        copy_col(st, 2, ti->wecom_id, sizeof ti->wecom_id);
        copy_col(st, 3, ti->group_name, sizeof ti->group_name);
        copy_col(st, 4, ti->group_wecom_id, sizeof ti->group_wecom_id);
        ti->wecom = sqlite3_column_int(st, 5) != 0;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

typedef struct group_info {
    bool found, wecom;
    char name[160], wecom_id[96];
} group_info;

static int group_info_load(store_conn *c, int64_t tenant, int64_t id, group_info *gi) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT name, wecom_id, source='wecom' FROM tag_group WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    memset(gi, 0, sizeof *gi);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        gi->found = true;
        copy_col(st, 0, gi->name, sizeof gi->name);
        copy_col(st, 1, gi->wecom_id, sizeof gi->wecom_id);
        gi->wecom = sqlite3_column_int(st, 2) != 0;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

/* WeCom takes tag and group names of at most 30 characters (spec §3.6);
 * refusing a longer one here keeps it from dying in the outbox later. */
#define WECOM_TAG_NAME_CHARS 30
int tag_wecom_name_check(const char *name, const char *what, siyu_err *err) {
    size_t n = utf8_chars(name);
    if (n > WECOM_TAG_NAME_CHARS)
        return siyu_err_set(err, SIYU_EINVAL, "name",
                            "a WeCom %s name is at most %d characters; this one has %zu", what,
                            WECOM_TAG_NAME_CHARS, n);
    return 0;
}

int tag_wecom_tag_created(store_conn *c, int64_t tenant, int64_t tag_id, const char *actor,
                          unsigned *kick, siyu_err *err) {
    tag_info ti;
    int rc = tag_info_load(c, tenant, tag_id, &ti);
    if (rc != 0 || !ti.found || !ti.wecom) return rc;
    if ((rc = tag_wecom_name_check(ti.name, "tag", err)) != 0) return rc;
    if (!ti.group_wecom_id[0] && (rc = tag_wecom_name_check(ti.group_name, "tag group", err)) != 0)
        return rc;
    json_t *body = json_pack("{s:[{s:s}]}", "tag", "name", ti.name);
    if (body && ti.group_wecom_id[0])
        json_object_set_new(body, "group_id", json_string(ti.group_wecom_id));
    else if (body)
        json_object_set_new(body, "group_name", json_string(ti.group_name));
    char ref[48];
    snprintf(ref, sizeof ref, "tag:%lld", (long long)tag_id);
    return enqueue(c, tenant, "add_corp_tag", body, OUTBOX_LANE_NORMAL, actor, ref, kick, err);
}

int tag_wecom_renamed(store_conn *c, int64_t tenant, bool group, int64_t id, const char *actor,
                      unsigned *kick, siyu_err *err) {
    const char *wecom_id, *name;
    tag_info ti;
    group_info gi;
    int rc;
    if (group) {
        if ((rc = group_info_load(c, tenant, id, &gi)) != 0 || !gi.found || !gi.wecom) return rc;
        wecom_id = gi.wecom_id, name = gi.name;
    } else {
        if ((rc = tag_info_load(c, tenant, id, &ti)) != 0 || !ti.found || !ti.wecom) return rc;
        wecom_id = ti.wecom_id, name = ti.name;
    }
    if ((rc = tag_wecom_name_check(name, group ? "tag group" : "tag", err)) != 0) return rc;
    if (!wecom_id[0]) return 0; /* not in WeCom yet: the add answer checks the name */
    char ref[48];
    snprintf(ref, sizeof ref, "%s:%lld", group ? "tag_group" : "tag", (long long)id);
    return enqueue(c, tenant, "edit_corp_tag", json_pack("{s:s,s:s}", "id", wecom_id, "name", name),
                   OUTBOX_LANE_NORMAL, actor, ref, kick, err);
}

/* The wecom ids of a group's tags, as a JSON array. */
static json_t *group_tag_ids(store_conn *c, int64_t tenant, int64_t group) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT wecom_id FROM tag WHERE tenant_id=?1 AND "
                                          "group_id=?2 AND wecom_id IS NOT NULL ORDER BY id");
    json_t *a = json_array();
    if (!st) return a;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, group);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_reset(st);
    return a;
}

int tag_wecom_deleting(store_conn *c, int64_t tenant, bool group, int64_t id, const char *actor,
                       unsigned *kick, siyu_err *err) {
    json_t *body = NULL;
    int rc;
    if (group) {
        group_info gi;
        if ((rc = group_info_load(c, tenant, id, &gi)) != 0 || !gi.found || !gi.wecom) return rc;
        if (gi.wecom_id[0]) {
            body = json_pack("{s:[s]}", "group_id", gi.wecom_id);
        } else {
            json_t *ids = group_tag_ids(c, tenant, id);
            if (json_array_size(ids) == 0) {
                json_decref(ids);
                return 0;
            }
            body = json_pack("{s:o}", "tag_id", ids);
        }
    } else {
        tag_info ti;
        if ((rc = tag_info_load(c, tenant, id, &ti)) != 0 || !ti.found || !ti.wecom) return rc;
        if (!ti.wecom_id[0]) return 0; /* pending add: its answer deletes it */
        body = json_pack("{s:[s]}", "tag_id", ti.wecom_id);
    }
    char ref[48];
    snprintf(ref, sizeof ref, "%s:%lld", group ? "tag_group" : "tag", (long long)id);
    return enqueue(c, tenant, "del_corp_tag", body, OUTBOX_LANE_NORMAL, actor, ref, kick, err);
}

/* ---- mark_tag ------------------------------------------------------------ */

static json_t *wecom_tag_ids(store_conn *c, int64_t tenant, const char *tag_ids) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT t.wecom_id FROM json_each(?1) j JOIN tag t ON t.id=j.value AND t.tenant_id=?2 "
           "JOIN tag_group g ON g.id=t.group_id WHERE g.source='wecom' AND t.wecom_id IS NOT NULL "
           "ORDER BY j.key");
    json_t *a = json_array();
    if (!st) return a;
    store_bind_text(st, 1, tag_ids);
    sqlite3_bind_int64(st, 2, tenant);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_reset(st);
    return a;
}

int tag_wecom_mark(store_conn *c, int64_t tenant, const char *tag_ids, const char *customer_ids,
                   bool remove, const char *actor, unsigned *kick, int64_t *queued, siyu_err *err) {
    *queued = 0;
    json_t *wids = wecom_tag_ids(c, tenant, tag_ids);
    if (json_array_size(wids) == 0) {
        json_decref(wids);
        return 0;
    }
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT cj.value, e.userid, i.value FROM json_each(?1) cj "
                           "JOIN relationship r ON r.tenant_id=?2 AND r.customer_id=cj.value AND "
                           "r.status='active' JOIN employee e ON e.id=r.employee_id "
                           "JOIN identity i ON i.tenant_id=?2 AND i.customer_id=cj.value AND "
                           "+i.kind='wecom_external_userid' ORDER BY cj.key, r.employee_id");
    if (!st) {
        json_decref(wids);
        return SIYU_EIO;
    }
    store_bind_text(st, 1, customer_ids);
    sqlite3_bind_int64(st, 2, tenant);
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        char ref[48];
        snprintf(ref, sizeof ref, "customer:%lld", (long long)sqlite3_column_int64(st, 0));
        json_t *body =
            json_pack("{s:s,s:s,s:O}", "userid", sqlite3_column_text(st, 1), "external_userid",
                      sqlite3_column_text(st, 2), remove ? "remove_tag" : "add_tag", wids);
        rc = enqueue(c, tenant, "mark_tag", body, OUTBOX_LANE_BULK, actor, ref, kick, err);
        if (rc == 0) (*queued)++;
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    json_decref(wids);
    return rc;
}

void tag_wecom_kick(struct outbox *ob, unsigned kick) {
    if (!ob) return;
    for (int lane = 0; lane < 3; lane++)
        if (kick & (1u << lane)) outbox_kick(ob, lane);
}

/* ---- add_corp_tag answers ------------------------------------------------ */

/* The answer's tag for our row: the one named like it, else the only one. */
static const json_t *answer_tag(const json_t *tags, const char *name) {
    size_t i;
    const json_t *t;
    json_array_foreach(tags, i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && strcmp(n, name) == 0) return t;
    }
    return json_array_size(tags) == 1 ? json_array_get(tags, 0) : NULL;
}

/* A row that already holds the WeCom id the answer gives ours — a
 * placeholder made by a callback (change_external_tag create) or a sync that
 * got there first — is folded into ours: its tags (for a group) or its
 * customer links (for a tag) move over, then it goes. Statements are bound
 * ?1 tenant, ?2 our id, ?3 the WeCom id; run in order. */
static const char *const merge_group_sql[] = {
    "UPDATE OR IGNORE tag SET group_id=?2 WHERE tenant_id=?1 AND group_id=(SELECT id FROM "
    "tag_group WHERE tenant_id=?1 AND wecom_id=?3 AND id<>?2)",
    "DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id IN (SELECT id FROM tag WHERE "
    "tenant_id=?1 AND group_id=(SELECT id FROM tag_group WHERE tenant_id=?1 AND wecom_id=?3 AND "
    "id<>?2))",
    "DELETE FROM tag WHERE tenant_id=?1 AND group_id=(SELECT id FROM tag_group WHERE "
    "tenant_id=?1 AND wecom_id=?3 AND id<>?2)",
    "DELETE FROM tag_group WHERE tenant_id=?1 AND wecom_id=?3 AND id<>?2",
    "UPDATE tag_group SET wecom_id=?3 WHERE tenant_id=?1 AND id=?2",
    NULL,
};
static const char *const merge_tag_sql[] = {
    "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, tag_id, source, employee_id, "
    "created_at) SELECT tenant_id, customer_id, ?2, source, employee_id, created_at FROM "
    "customer_tag WHERE tenant_id=?1 AND tag_id=(SELECT id FROM tag WHERE tenant_id=?1 AND "
    "wecom_id=?3 AND id<>?2)",
    "DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id=(SELECT id FROM tag WHERE "
    "tenant_id=?1 AND wecom_id=?3 AND id<>?2)",
    "DELETE FROM tag WHERE tenant_id=?1 AND wecom_id=?3 AND id<>?2",
    "UPDATE tag SET wecom_id=?3 WHERE tenant_id=?1 AND id=?2",
    NULL,
};

static int set_wecom_id(store_conn *c, const char *const *sqls, int64_t tenant, int64_t id,
                        const char *wecom_id) {
    for (int i = 0; sqls[i]; i++) {
        sqlite3_stmt *st = store_conn_stmt(c, sqls[i]);
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, tenant);
        sqlite3_bind_int64(st, 2, id);
        store_bind_text(st, 3, wecom_id);
        int rc = store_stmt_run(st);
        if (rc != 0) return rc;
    }
    return 0;
}

/* Customers tagged in Siyu while the tag's add was still pending could not
 * be marked in WeCom (no id yet): now that it has one, mark them. */
static int mark_pending_links(store_conn *c, tag_wecom_result *r, int64_t tag_id) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT json_group_array(customer_id), count(*) FROM customer_tag WHERE tenant_id=?1 "
           "AND tag_id=?2 AND source<>'wecom'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->tenant_id);
    sqlite3_bind_int64(st, 2, tag_id);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW || sqlite3_column_int64(st, 1) == 0) {
        sqlite3_reset(st);
        return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : store_rc(step);
    }
    char *customers = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (!customers) return SIYU_ENOMEM;
    char tags[32];
    snprintf(tags, sizeof tags, "[%lld]", (long long)tag_id);
    int64_t queued = 0;
    int rc = tag_wecom_mark(c, r->tenant_id, tags, customers, false, "wecom", &r->kick, &queued,
                            &r->err);
    free(customers);
    return rc;
}

int tag_wecom_result_step(store_conn *c, void *arg) {
    tag_wecom_result *r = arg;
    long long id = 0;
    r->kick = 0;
    if (!r->ref || sscanf(r->ref, "tag:%lld", &id) != 1 || id <= 0) return 0;
    const json_t *grp = json_object_get(r->answer, "tag_group");
    const char *gid = json_string_value(json_object_get(grp, "group_id"));
    const json_t *tags = json_object_get(grp, "tag");
    tag_info ti;
    int rc = tag_info_load(c, r->tenant_id, id, &ti);
    if (rc != 0) return rc;
    if (!ti.found) { /* deleted while the add was pending: delete it in WeCom too */
        json_t *ids = json_array();
        size_t i;
        const json_t *t;
        json_array_foreach(tags, i, t) {
            const char *tid = json_string_value(json_object_get(t, "id"));
            if (tid) json_array_append_new(ids, json_string(tid));
        }
        if (json_array_size(ids) == 0) {
            json_decref(ids);
            return 0;
        }
        return enqueue(c, r->tenant_id, "del_corp_tag", json_pack("{s:o}", "tag_id", ids),
                       OUTBOX_LANE_NORMAL, "wecom", r->ref, &r->kick, &r->err);
    }
    const char *gname = json_string_value(json_object_get(grp, "group_name"));
    if (gid && gname && strcmp(gname, ti.group_name) != 0 && /* group renamed while pending */
        (rc = enqueue(c, r->tenant_id, "edit_corp_tag",
                      json_pack("{s:s,s:s}", "id", gid, "name", ti.group_name), OUTBOX_LANE_NORMAL,
                      "wecom", r->ref, &r->kick, &r->err)) != 0)
        return rc;
    const json_t *t = answer_tag(tags, ti.name);
    if (!t) t = json_array_get(tags, 0); /* renamed while pending: ours is the one sent */
    const char *tid = json_string_value(json_object_get(t, "id"));
    if (!tid) return 0;
    /* The tag first, so a same-named duplicate in a placeholder group keeps
     * its customer links by moving them to ours. */
    if ((rc = set_wecom_id(c, merge_tag_sql, r->tenant_id, id, tid)) != 0) return rc;
    if (gid && !ti.group_wecom_id[0] &&
        (rc = set_wecom_id(c, merge_group_sql, r->tenant_id, ti.group_id, gid)) != 0)
        return rc;
    const char *sent = json_string_value(json_object_get(t, "name"));
    if (sent && strcmp(sent, ti.name) != 0 && /* renamed while pending */
        (rc = enqueue(c, r->tenant_id, "edit_corp_tag",
                      json_pack("{s:s,s:s}", "id", tid, "name", ti.name), OUTBOX_LANE_NORMAL,
                      "wecom", r->ref, &r->kick, &r->err)) != 0)
        return rc;
    return mark_pending_links(c, r, id);
}

static void on_add_result(void *arg, int64_t tenant_id, const char *kind, const char *ref,
                          const char *state, const json_t *answer, int errcode) {
    (void)kind;
    (void)errcode;
    siyu_ctx *ctx = arg;
    if (!state || strcmp(state, "sent") != 0) return;
    tag_wecom_result r = {.tenant_id = tenant_id, .ref = ref, .answer = answer};
    int rc = store_write(ctx->st, tag_wecom_result_step, &r);
    if (rc != 0)
        log_error("tag push: recording the add_corp_tag answer for %s failed: %s", ref ? ref : "?",
                  siyu_strerror(rc));
    else
        tag_wecom_kick(ctx->ob, r.kick);
}

/* add_corp_tag answers the outbox recorded while no listener ran (a stop
 * between the two commits): WeCom tags still without a wecom_id whose add
 * row is sent get the stored answer applied. */
typedef struct caught {
    int64_t tenant;
    char *ref, *result;
} caught;

int tag_wecom_catch_up_step(store_conn *c, void *arg) {
    unsigned *kick = arg;
    *kick = 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT o.tenant_id, o.ref, o.result FROM tag t JOIN tag_group g ON g.id=t.group_id "
           "JOIN outbox o ON o.tenant_id=t.tenant_id AND o.kind='add_corp_tag' AND "
           "o.ref='tag:'||t.id AND o.state='sent' WHERE t.wecom_id IS NULL AND "
           "g.source='wecom'");
    if (!st) return SIYU_EIO;
    caught *cs = NULL;
    size_t n = 0, cap = 0;
    int step, rc = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            caught *g = realloc(cs, cap * sizeof *cs);
            if (!g) {
                rc = SIYU_ENOMEM;
                break;
            }
            cs = g;
        }
        const char *ref = (const char *)sqlite3_column_text(st, 1);
        const char *res = (const char *)sqlite3_column_text(st, 2);
        cs[n++] =
            (caught){sqlite3_column_int64(st, 0), strdup(ref ? ref : ""), res ? strdup(res) : NULL};
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++) {
        json_t *answer = cs[i].result ? json_loads(cs[i].result, 0, NULL) : NULL;
        tag_wecom_result r = {.tenant_id = cs[i].tenant, .ref = cs[i].ref, .answer = answer};
        if (rc == 0 && answer) rc = tag_wecom_result_step(c, &r);
        *kick |= r.kick;
        json_decref(answer);
        free(cs[i].ref);
        free(cs[i].result);
    }
    free(cs);
    return rc;
}

void tag_wecom_listen(siyu_ctx *ctx) {
    if (!ctx || !ctx->ob) return;
    outbox_on_result(ctx->ob, "add_corp_tag", on_add_result, ctx);
    unsigned kick = 0;
    int rc = store_write(ctx->st, tag_wecom_catch_up_step, &kick);
    if (rc != 0)
        log_error("tag push: catching up on recorded add_corp_tag answers failed: %s",
                  siyu_strerror(rc));
    else
        tag_wecom_kick(ctx->ob, kick);
}
