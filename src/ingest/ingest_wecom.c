/* ingest_wecom.c — one WeCom callback event → store rows, inside a write step.
 *
 * Flow of ingest_wecom_apply (all on the writer connection, cached
 * statements, no schema work):
 *
 *   processed_callback INSERT ... DO NOTHING ──changes()==0──> duplicate, stop
 *        │
 *        ├─ contact kinds ─> employee/customer ensure ─> relationship upsert/end
 *        ├─ chat kinds ────> group_chat upsert ─> member join/leave, dismiss
 *        ├─ tag kinds ─────> tag / tag_group placeholder, touch or cascade delete
 *        └─ unknown ───────> link existing employee/customer only
 *        │
 *   event INSERT (source 'wecom', type "wecom.<kind>", ts = CreateTime)
 *
 * Relationship lifecycle (status column), forward-only in CreateTime:
 *
 *   (none) ──add/add_half: rel_add()──> active
 *   active ──del_follow_user: rel_end()──> deleted_by_customer
 *   active ──del_external_contact: rel_end()──> deleted_by_employee
 *                                   (Source DELETE_BY_TRANSFER: transferred)
 *   ended  ──add (CreateTime >= ended_at): rel_add()──> active (revived)
 *
 * Channel QR codes (store/channel.c): an add whose State is a channel's is
 * attributed to it (relationship.channel_id) with its auto-tags, in the
 * same step (rel_channel).
 *
 * Transfers (store/transfer.c) are finished in the same step: the takeover's
 * add_external_contact (transfer_on_add) and the handover's DELETE_BY_TRANSFER
 * delete (transfer_on_transfer_delete) mark the customer's transfer done;
 * transfer_fail (transfer_on_fail) marks it refused or failed.
 *
 * Group member lifecycle: (none)|left ──add_member: member_join()──> in
 *                         (none)|in   ──del_member: member_leave()──> left
 *
 * Customers are never deleted here: a customer with no active relationship
 * left is "lost". Entities first seen in a callback are created bare
 * (employee: userid; customer: external_userid + identity row) and filled in
 * by a later sync.
 *
 * Ownership: nothing allocated here outlives a call; statements belong to
 * the connection (reset after use, never finalized). */
#include "ingest/ingest_wecom.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/audit.h"
#include "store/channel.h"
#include "store/groupchat.h"
#include "store/org.h"
#include "store/tag_rule.h"
#include "store/transfer.h"

#define WECOM_GROUP_NAME "(wecom)" /* tag group for tags whose group is unknown */

/* State of one apply call. */
typedef struct ictx {
    store_conn *c;
    int64_t tenant;
    int64_t ts;  /* CreateTime (or TimeStamp, or now) */
    int64_t now; /* created_at / updated_at */
    const wecom_event *ev;
    ingest_result *out;
    bool adding;       /* add/add_half: a customer created now gets first_added_at */
    bool new_customer; /* customer_ensure created the event's customer */
} ictx;

/* ---- helpers ------------------------------------------------------------ */

/* s when it is a non-empty string, else NULL. */
static const char *nz(const char *s) {
    return s && *s ? s : NULL;
}

static sqlite3_stmt *stmt(ictx *ic, const char *sql) {
    return store_conn_stmt(ic->c, sql);
}

/* ---- employees and customers ------------------------------------------- */

/* 0 when found, 1 when not, or a negative SIYU_E* code. */
static int employee_find(ictx *ic, const char *userid, int64_t *id) {
    int rc = org_employee_find(ic->c, ic->tenant, userid, id);
    return rc == SIYU_ENOTFOUND ? 1 : rc;
}

/* A member named by a callback before any sync: created active, audited. */
static int employee_ensure(ictx *ic, const char *userid, int64_t *id) {
    return org_employee_ensure(ic->c, ic->tenant, userid, "wecom", id);
}

static int identity_add(ictx *ic, int64_t customer_id, const char *external_userid) {
    sqlite3_stmt *st = stmt(ic, "INSERT INTO identity(tenant_id, customer_id, kind, value, "
                                "created_at) VALUES(?1,?2,'wecom_external_userid',?3,?4) "
                                "ON CONFLICT DO NOTHING");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, customer_id);
    store_bind_text(st, 3, external_userid);
    sqlite3_bind_int64(st, 4, ic->now);
    return store_stmt_run(st);
}

/* By identity, the one index of external ids (every path that creates a
 * customer writes its identity row). 0 found, 1 absent, or an error. */
static int customer_find(ictx *ic, const char *ext, int64_t *id, int64_t *has_identity) {
    sqlite3_stmt *st =
        stmt(ic, "SELECT customer_id, 1 FROM identity WHERE tenant_id=?1 AND "
                 "kind='wecom_external_userid' AND value=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    store_bind_text(st, 2, ext);
    return store_stmt_query_id(st, id, has_identity);
}

static int customer_ensure(ictx *ic, const char *ext, int64_t *id) {
    int64_t has_identity = 0;
    int rc = customer_find(ic, ext, id, &has_identity);
    if (rc < 0) return rc;
    if (rc == 0) return has_identity ? 0 : identity_add(ic, *id, ext);
    sqlite3_stmt *st = stmt(ic, "INSERT INTO customer(tenant_id, external_userid, first_added_at, "
                                "created_at, updated_at) VALUES(?1,?2,?3,?4,?4)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    store_bind_text(st, 2, ext);
    if (ic->adding) sqlite3_bind_int64(st, 3, ic->ts);
    sqlite3_bind_int64(st, 4, ic->now);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    *id = store_conn_last_id(ic->c);
    ic->new_customer = true;
    return identity_add(ic, *id, ext);
}

/* Ensures the event's UserID / ExternalUserID (when present) and links them
 * to the event row. */
static int contact_resolve(ictx *ic, int64_t *cust, int64_t *emp) {
    int rc = 0;
    *cust = *emp = 0;
    if (nz(ic->ev->user_id) && (rc = employee_ensure(ic, ic->ev->user_id, emp)) != 0) return rc;
    if (nz(ic->ev->external_user_id) &&
        (rc = customer_ensure(ic, ic->ev->external_user_id, cust)) != 0)
        return rc;
    ic->out->customer_id = *cust;
    ic->out->employee_id = *emp;
    return 0;
}

/* ---- relationships ------------------------------------------------------ */

static int customer_first_added(ictx *ic, int64_t cust) {
    sqlite3_stmt *st = stmt(ic, "UPDATE customer SET first_added_at=?3, updated_at=?4 "
                                "WHERE tenant_id=?1 AND id=?2 AND "
                                "(first_added_at IS NULL OR first_added_at > ?3)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, ic->ts);
    sqlite3_bind_int64(st, 4, ic->now);
    return store_stmt_run(st);
}

/* Creates or revives (customer, employee). An already active relationship
 * keeps its earliest added_at and its first channel (add_half followed by
 * add); an ended one is revived only by an add not older than its end. */
static int rel_add(ictx *ic, int64_t cust, int64_t emp) {
    sqlite3_stmt *st =
        stmt(ic, "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, added_at, "
                 "state, updated_at) VALUES(?1,?2,?3,'active',?4,?5,?6) "
                 "ON CONFLICT(tenant_id, customer_id, employee_id) DO UPDATE SET "
                 "added_at=CASE WHEN status='active' THEN min(added_at, excluded.added_at) "
                 "ELSE excluded.added_at END, "
                 "state=CASE WHEN status='active' THEN coalesce(state, excluded.state) "
                 "ELSE excluded.state END, "
                 "status='active', ended_at=NULL, end_reason=NULL, updated_at=excluded.updated_at "
                 "WHERE status='active' OR excluded.added_at >= coalesce(ended_at, 0)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, emp);
    sqlite3_bind_int64(st, 4, ic->ts);
    store_bind_text(st, 5, nz(ic->ev->state));
    sqlite3_bind_int64(st, 6, ic->now);
    int rc = store_stmt_run(st);
    if (rc != 0 || ic->new_customer) return rc; /* a new customer got it at insert */
    return customer_first_added(ic, cust);
}

/* Ends an active relationship unless the delete is older than its add. */
static int rel_end(ictx *ic, int64_t cust, int64_t emp, const char *status, const char *reason) {
    sqlite3_stmt *st = stmt(ic, "UPDATE relationship SET status=?4, ended_at=?5, end_reason=?6, "
                                "updated_at=?7 WHERE tenant_id=?1 AND customer_id=?2 AND "
                                "employee_id=?3 AND status='active' AND added_at <= ?5");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, emp);
    store_bind_text(st, 4, status);
    sqlite3_bind_int64(st, 5, ic->ts);
    store_bind_text(st, 6, reason);
    sqlite3_bind_int64(st, 7, ic->now);
    return store_stmt_run(st);
}

/* A State naming one of the tenant's channel QR codes attributes the
 * relationship to it and applies the channel's auto-tags and remark
 * templates (store/channel.c). The outbox rows this queues (mark_tag,
 * remark, update_contact_way) are picked up by the workers' next poll. */
static int rel_channel(ictx *ic, int64_t cust, int64_t emp) {
    int64_t channel_id = 0;
    unsigned kick = 0;
    return channel_on_add(ic->c, ic->tenant, cust, emp, nz(ic->ev->state), ic->ts, ic->now,
                          &channel_id, &kick);
}

static int rel_touch(ictx *ic, int64_t cust, int64_t emp) {
    sqlite3_stmt *st = stmt(ic, "UPDATE relationship SET updated_at=?4 WHERE tenant_id=?1 AND "
                                "customer_id=?2 AND employee_id=?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, emp);
    sqlite3_bind_int64(st, 4, ic->now);
    return store_stmt_run(st);
}

static int apply_contact(ictx *ic) {
    int64_t cust, emp;
    ic->adding = ic->ev->kind == WECOM_EV_ADD_EXTERNAL_CONTACT ||
                 ic->ev->kind == WECOM_EV_ADD_HALF_EXTERNAL_CONTACT;
    int rc = contact_resolve(ic, &cust, &emp);
    if (rc != 0 || !cust || !emp) return rc; /* half-described: event only */
    const wecom_event *ev = ic->ev;
    switch (ev->kind) {
    case WECOM_EV_ADD_EXTERNAL_CONTACT:
        rc = rel_add(ic, cust, emp);
        if (rc == 0) rc = rel_channel(ic, cust, emp);
        return rc ? rc : transfer_on_add(ic->c, ic->tenant, cust, emp, ic->ts);
    case WECOM_EV_ADD_HALF_EXTERNAL_CONTACT:
        rc = rel_add(ic, cust, emp);
        return rc ? rc : rel_channel(ic, cust, emp);
    case WECOM_EV_EDIT_EXTERNAL_CONTACT:
        return rel_touch(ic, cust, emp);
    case WECOM_EV_DEL_FOLLOW_USER:
        return rel_end(ic, cust, emp, "deleted_by_customer", "del_follow_user");
    case WECOM_EV_DEL_EXTERNAL_CONTACT: {
        const char *src = nz(ev->source);
        bool transfer = src && strcmp(src, "DELETE_BY_TRANSFER") == 0;
        rc = rel_end(ic, cust, emp, transfer ? "transferred" : "deleted_by_employee",
                     src ? src : "del_external_contact");
        if (rc == 0 && transfer)
            rc = transfer_on_transfer_delete(ic->c, ic->tenant, cust, emp, ic->ts);
        return rc;
    }
    case WECOM_EV_TRANSFER_FAIL:
        return transfer_on_fail(ic->c, ic->tenant, cust, emp, nz(ev->fail_reason), ic->ts);
    default:
        return 0; /* msg_audit_approved: event only */
    }
}

/* ---- customer groups ---------------------------------------------------- */

/* Upserts the group (a placeholder when first seen in an update/dismiss)
 * and records CurMemVer. Never changes status. */
static int chat_upsert(ictx *ic, int64_t *gid) {
    sqlite3_stmt *st =
        stmt(ic, "INSERT INTO group_chat(tenant_id, chat_id, status, member_version, created_at, "
                 "updated_at) VALUES(?1,?2,'active',?3,?4,?5) ON CONFLICT(tenant_id, chat_id) DO "
                 "UPDATE SET created_at=min(created_at, excluded.created_at), "
                 "member_version=coalesce(excluded.member_version, member_version), "
                 "updated_at=excluded.updated_at RETURNING id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    store_bind_text(st, 2, ic->ev->chat_id);
    store_bind_text(st, 3, nz(ic->ev->cur_mem_ver));
    sqlite3_bind_int64(st, 4, ic->ts);
    sqlite3_bind_int64(st, 5, ic->now);
    int rc = store_stmt_query_id(st, gid, NULL);
    return rc == 1 ? SIYU_EIO : rc;
}

static int chat_dismiss(ictx *ic, int64_t gid) {
    sqlite3_stmt *st = stmt(ic, "UPDATE group_chat SET status='dismissed', dismissed_at=?3, "
                                "updated_at=?4 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, gid);
    sqlite3_bind_int64(st, 3, ic->ts);
    sqlite3_bind_int64(st, 4, ic->now);
    return store_stmt_run(st);
}

/* External ids start with "wo" or "wm"; such an id still counts as an
 * employee when an employee already has it as userid. */
static int member_resolve(ictx *ic, const char *id, int64_t *cust, int64_t *emp) {
    *cust = *emp = 0;
    if (strncmp(id, "wo", 2) != 0 && strncmp(id, "wm", 2) != 0) return employee_ensure(ic, id, emp);
    int rc = employee_find(ic, id, emp);
    if (rc <= 0) return rc;
    *emp = 0;
    return customer_ensure(ic, id, cust);
}

/* Joins (join) or leaves a member; state only moves forward in time. */
static const char *const member_sql[2] = {
    "INSERT INTO group_member(tenant_id, group_id, member_id, customer_id, employee_id, "
    "status, quit_scene, left_at) VALUES(?1,?2,?3,?4,?5,'left',?6,?7) "
    "ON CONFLICT(tenant_id, group_id, member_id) DO UPDATE SET status='left', "
    "quit_scene=excluded.quit_scene, left_at=excluded.left_at "
    "WHERE status='in' AND coalesce(joined_at, 0) <= excluded.left_at",
    "INSERT INTO group_member(tenant_id, group_id, member_id, customer_id, employee_id, "
    "status, join_scene, joined_at) VALUES(?1,?2,?3,?4,?5,'in',?6,?7) "
    "ON CONFLICT(tenant_id, group_id, member_id) DO UPDATE SET status='in', "
    "join_scene=excluded.join_scene, joined_at=excluded.joined_at, quit_scene=NULL, "
    "left_at=NULL WHERE status<>'in' AND excluded.joined_at >= coalesce(left_at, 0)",
};

static int member_set(ictx *ic, int64_t gid, const char *id, int64_t cust, int64_t emp,
                      bool join) {
    sqlite3_stmt *st = stmt(ic, member_sql[join]);
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, gid);
    store_bind_text(st, 3, id);
    store_bind_opt_int(st, 4, cust, cust > 0);
    store_bind_opt_int(st, 5, emp, emp > 0);
    int scene = join ? ic->ev->join_scene : ic->ev->quit_scene;
    store_bind_opt_int(st, 6, scene, scene >= 0);
    sqlite3_bind_int64(st, 7, ic->ts);
    int rc = store_stmt_run(st);
    /* A state change (not a repeat): the member log and rolling QR codes. */
    if (rc == 0 && store_conn_changes(ic->c) > 0)
        rc = groupchat_on_member(ic->c, ic->tenant, gid, id, cust, join, scene, ic->ts);
    return rc;
}

static int chat_members(ictx *ic, int64_t gid, bool join) {
    const wecom_event *ev = ic->ev;
    for (size_t i = 0; i < ev->mem_change_list_len; i++) {
        const char *id = ev->mem_change_list[i];
        if (!nz(id)) continue;
        int64_t cust, emp;
        int rc = member_resolve(ic, id, &cust, &emp);
        if (rc == 0)
            rc = member_set(ic, gid, id, cust, emp, join);
        if (rc != 0) return rc;
        if (ev->mem_change_list_len == 1) { /* one member: link the event row */
            ic->out->customer_id = cust;
            ic->out->employee_id = emp;
        }
    }
    return 0;
}

static int apply_chat(ictx *ic) {
    const wecom_event *ev = ic->ev;
    if (!nz(ev->chat_id)) return 0; /* nothing to attach to: event only */
    int64_t gid = 0;
    int rc = chat_upsert(ic, &gid);
    if (rc != 0) return rc;
    if (ev->kind == WECOM_EV_CHAT_DISMISS) return chat_dismiss(ic, gid);
    if (ev->kind != WECOM_EV_CHAT_UPDATE || !ev->update_detail) return 0;
    if (strcmp(ev->update_detail, "add_member") == 0) return chat_members(ic, gid, true);
    if (strcmp(ev->update_detail, "del_member") == 0) return chat_members(ic, gid, false);
    return 0; /* change_owner / change_name / change_notice: details on sync */
}

/* ---- corp tags ---------------------------------------------------------- */

static bool is_group(const wecom_event *ev) {
    return ev->tag_type && strcmp(ev->tag_type, "tag_group") == 0;
}

/* Touches updated_at of the tag or group with this wecom_id. 0 and *found,
 * or an error. */
static int tag_touch(ictx *ic, bool group, bool *found) {
    sqlite3_stmt *st = stmt(ic, group ? "UPDATE tag_group SET updated_at=?3 WHERE tenant_id=?1 "
                                        "AND wecom_id=?2"
                                      : "UPDATE tag SET updated_at=?3 WHERE tenant_id=?1 AND "
                                        "wecom_id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    store_bind_text(st, 2, ic->ev->id);
    sqlite3_bind_int64(st, 3, ic->now);
    int rc = store_stmt_run(st);
    *found = rc == 0 && store_conn_changes(ic->c) > 0;
    return rc;
}

static int wecom_group_ensure(ictx *ic, int64_t *gid) {
    sqlite3_stmt *st = stmt(ic, "SELECT id FROM tag_group WHERE tenant_id=?1 AND name=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    store_bind_text(st, 2, WECOM_GROUP_NAME);
    int rc = store_stmt_query_id(st, gid, NULL);
    if (rc <= 0) return rc;
    st = stmt(ic, "INSERT INTO tag_group(tenant_id, wecom_id, name, source, created_at, "
                  "updated_at) VALUES(?1,?2,?3,'wecom',?4,?4) ON CONFLICT DO NOTHING");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_null(st, 2);
    store_bind_text(st, 3, WECOM_GROUP_NAME);
    sqlite3_bind_int64(st, 4, ic->now);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    if (store_conn_changes(ic->c) == 0) return SIYU_ECONFLICT;
    *gid = store_conn_last_id(ic->c);
    return 0;
}

/* Placeholder named after its wecom id until a sync fills the name in. A
 * name clash with an existing row leaves things as they are. */
static int tag_create(ictx *ic) {
    bool group = is_group(ic->ev), found;
    int rc = tag_touch(ic, group, &found);
    if (rc != 0 || found) return rc;
    if (group) {
        sqlite3_stmt *st = stmt(ic, "INSERT INTO tag_group(tenant_id, wecom_id, name, source, "
                                    "created_at, updated_at) VALUES(?1,?2,?2,'wecom',?3,?3) "
                                    "ON CONFLICT DO NOTHING");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, ic->tenant);
        store_bind_text(st, 2, ic->ev->id);
        sqlite3_bind_int64(st, 3, ic->now);
        return store_stmt_run(st);
    }
    int64_t gid = 0;
    if ((rc = wecom_group_ensure(ic, &gid)) != 0) return rc;
    sqlite3_stmt *st = stmt(ic, "INSERT INTO tag(tenant_id, group_id, wecom_id, name, created_at, "
                                "updated_at) VALUES(?1,?2,?3,?3,?4,?4) ON CONFLICT DO NOTHING");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    sqlite3_bind_int64(st, 2, gid);
    store_bind_text(st, 3, ic->ev->id);
    sqlite3_bind_int64(st, 4, ic->now);
    return store_stmt_run(st);
}

/* Cascade deletes bound to (tenant, wecom id), in order: the customer_tag
 * links first, then the rows they point to. [0] a tag, [1] a tag group. */
static const char *const tag_delete_sql[2][3] = {
    {"DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id IN (SELECT id FROM tag WHERE "
     "tenant_id=?1 AND wecom_id=?2)",
     "DELETE FROM tag WHERE tenant_id=?1 AND wecom_id=?2", NULL},
    {"DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id IN (SELECT id FROM tag WHERE "
     "tenant_id=?1 AND group_id IN (SELECT id FROM tag_group WHERE tenant_id=?1 AND wecom_id=?2))",
     "DELETE FROM tag WHERE tenant_id=?1 AND group_id IN (SELECT id FROM tag_group WHERE "
     "tenant_id=?1 AND wecom_id=?2)",
     "DELETE FROM tag_group WHERE tenant_id=?1 AND wecom_id=?2"},
};

/* Deletes the tag with its customer_tag rows, or the group with all its
 * tags (WeCom sends no per-tag callback then). Audited: it removes data. */
static int tag_delete(ictx *ic) {
    bool group = is_group(ic->ev);
    int64_t n[3] = {0, 0, 0};
    for (int i = 0; i < 3 && tag_delete_sql[group][i]; i++) {
        sqlite3_stmt *st = stmt(ic, tag_delete_sql[group][i]);
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, ic->tenant);
        store_bind_text(st, 2, ic->ev->id);
        int rc = store_stmt_run(st);
        if (rc != 0) return rc;
        n[i] = store_conn_changes(ic->c);
    }
    int64_t rows = n[1] + n[2]; /* tags and groups; n[0] = customer links */
    if (rows == 0) return 0;
    char target[96], detail[64];
    snprintf(target, sizeof target, "%s:wecom:%.64s", group ? "tag_group" : "tag", ic->ev->id);
    snprintf(detail, sizeof detail, "customer_tag rows removed: %lld", (long long)n[0]);
    return store_audit(ic->c, ic->tenant, "wecom", group ? "tag_group.delete" : "tag.delete",
                       target, rows, detail);
}

static int apply_tag(ictx *ic) {
    const wecom_event *ev = ic->ev;
    if (ev->kind == WECOM_EV_TAG_SHUFFLE || !nz(ev->id)) return 0; /* event only */
    if (!ev->tag_type || (strcmp(ev->tag_type, "tag") != 0 && !is_group(ev))) return 0;
    bool found;
    switch (ev->kind) {
    case WECOM_EV_TAG_CREATE:
        return tag_create(ic);
    case WECOM_EV_TAG_UPDATE:
        return tag_touch(ic, is_group(ev), &found);
    case WECOM_EV_TAG_DELETE:
        return tag_delete(ic);
    default:
        return 0;
    }
}

/* Unknown events: link the event row to an existing employee/customer but
 * create nothing. */
static int apply_unknown(ictx *ic) {
    int64_t id = 0, has_identity;
    int rc;
    if (nz(ic->ev->user_id) && (rc = employee_find(ic, ic->ev->user_id, &id)) <= 0) {
        if (rc < 0) return rc;
        ic->out->employee_id = id;
    }
    if (nz(ic->ev->external_user_id) &&
        (rc = customer_find(ic, ic->ev->external_user_id, &id, &has_identity)) <= 0) {
        if (rc < 0) return rc;
        ic->out->customer_id = id;
    }
    return 0;
}

/* ---- the event row and dedupe -------------------------------------------- */

/* 0 when new, 1 when the key was already processed, or an error. */
static int dedupe_claim(ictx *ic, const char *key) {
    sqlite3_stmt *st = stmt(ic, "INSERT INTO processed_callback(tenant_id, dedupe_key, kind, "
                                "received_at) VALUES(?1,?2,?3,?4) ON CONFLICT DO NOTHING");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    store_bind_text(st, 2, key);
    store_bind_text(st, 3, wecom_event_kind_name(ic->ev->kind));
    sqlite3_bind_int64(st, 4, ic->now);
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    return store_conn_changes(ic->c) == 0 ? 1 : 0;
}

static int event_insert(ictx *ic, const char *props) {
    char type[64];
    snprintf(type, sizeof type, "wecom.%s", wecom_event_kind_name(ic->ev->kind));
    sqlite3_stmt *st = stmt(ic, "INSERT INTO event(tenant_id, customer_id, type, ts, employee_id, "
                                "source, props) VALUES(?1,?2,?3,?4,?5,'wecom',?6)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, ic->tenant);
    store_bind_opt_int(st, 2, ic->out->customer_id, ic->out->customer_id > 0);
    sqlite3_bind_text(st, 3, type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, ic->ts);
    store_bind_opt_int(st, 5, ic->out->employee_id, ic->out->employee_id > 0);
    store_bind_text(st, 6, props);
    int rc = store_stmt_run(st);
    if (rc == 0) ic->out->event_id = store_conn_last_id(ic->c);
    return rc;
}

static int apply_kind(ictx *ic) {
    switch (ic->ev->kind) {
    case WECOM_EV_ADD_EXTERNAL_CONTACT:
    case WECOM_EV_ADD_HALF_EXTERNAL_CONTACT:
    case WECOM_EV_EDIT_EXTERNAL_CONTACT:
    case WECOM_EV_DEL_EXTERNAL_CONTACT:
    case WECOM_EV_DEL_FOLLOW_USER:
    case WECOM_EV_TRANSFER_FAIL:
    case WECOM_EV_MSG_AUDIT_APPROVED:
        return apply_contact(ic);
    case WECOM_EV_CHAT_CREATE:
    case WECOM_EV_CHAT_UPDATE:
    case WECOM_EV_CHAT_DISMISS:
        return apply_chat(ic);
    case WECOM_EV_TAG_CREATE:
    case WECOM_EV_TAG_UPDATE:
    case WECOM_EV_TAG_DELETE:
    case WECOM_EV_TAG_SHUFFLE:
        return apply_tag(ic);
    default:
        return apply_unknown(ic);
    }
}

int ingest_wecom_apply(store_conn *c, int64_t tenant_id, const wecom_event *ev,
                       const char *dedupe_key, const char *props, ingest_result *out) {
    memset(out, 0, sizeof *out);
    if (!c || tenant_id <= 0 || !ev || !dedupe_key) return SIYU_EINVAL;
    ictx ic = {.c = c, .tenant = tenant_id, .ev = ev, .out = out, .now = siyu_now()};
    ic.ts = ev->create_time >= 0 ? ev->create_time : ev->time_stamp >= 0 ? ev->time_stamp : ic.now;
    int rc = dedupe_claim(&ic, dedupe_key);
    if (rc != 0) {
        out->duplicate = rc == 1;
        return rc == 1 ? 0 : rc;
    }
    if ((rc = apply_kind(&ic)) != 0) return rc;
    char *own = NULL;
    if (!props && !(props = own = ingest_wecom_props(ev))) return SIYU_ENOMEM;
    rc = event_insert(&ic, props);
    free(own);
    /* Auto-tag rules on channel, group join and event counts, same step. */
    if (rc == 0)
        rc = tag_rule_on_wecom(c, tenant_id, ev, out->customer_id, out->employee_id,
                               out->event_id, ic.ts);
    return rc;
}

int ingest_wecom_step(store_conn *c, void *arg) {
    ingest_wecom_cmd *cmd = arg;
    return ingest_wecom_apply(c, cmd->tenant_id, cmd->ev, cmd->dedupe_key, cmd->props,
                              &cmd->result);
}

/* ---- HTTP-thread helpers ------------------------------------------------ */

void ingest_wecom_dedupe_key(int64_t create_time, const char *msg, size_t len,
                             char out[INGEST_DEDUPE_KEY_SIZE]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";
    out[0] = 0;
    if (!EVP_Digest(msg, len, md, &n, EVP_sha256(), NULL) || n != 32) return;
    if (create_time < 0 || create_time > 9999999999LL) create_time = 0;
    snprintf(out, INGEST_DEDUPE_KEY_SIZE, "%010lld-", (long long)create_time);
    char *o = out + 11;
    for (unsigned i = 0; i < 24; i++) {
        *o++ = hex[md[i] >> 4];
        *o++ = hex[md[i] & 15];
    }
    *o = 0;
}

/* Props keys: string fields copied when present. unknown_only rows describe
 * what an unrecognised callback was; known kinds imply them by type. */
static const struct prop_str {
    const char *key;
    size_t off;
    bool unknown_only;
} prop_strs[] = {
    {"user_id", offsetof(wecom_event, user_id), false},
    {"external_user_id", offsetof(wecom_event, external_user_id), false},
    {"state", offsetof(wecom_event, state), false},
    {"welcome_code", offsetof(wecom_event, welcome_code), false},
    {"source", offsetof(wecom_event, source), false},
    {"fail_reason", offsetof(wecom_event, fail_reason), false},
    {"chat_id", offsetof(wecom_event, chat_id), false},
    {"update_detail", offsetof(wecom_event, update_detail), false},
    {"last_mem_ver", offsetof(wecom_event, last_mem_ver), false},
    {"cur_mem_ver", offsetof(wecom_event, cur_mem_ver), false},
    {"tag_id", offsetof(wecom_event, id), false},
    {"tag_type", offsetof(wecom_event, tag_type), false},
    {"strategy_id", offsetof(wecom_event, strategy_id), false},
    {"msg_type", offsetof(wecom_event, msg_type), true},
    {"event", offsetof(wecom_event, event), true},
    {"info_type", offsetof(wecom_event, info_type), true},
    {"change_type", offsetof(wecom_event, change_type), true},
    {"msg_id", offsetof(wecom_event, msg_id), true},
};

/* Field setters skip a value jansson rejects (not UTF-8) rather than fail. */
static void prop_str_set(json_t *o, const char *key, const char *s) {
    json_t *v = json_string(s);
    if (v) json_object_set_new(o, key, v);
}

static void prop_int_set(json_t *o, const char *key, int v) {
    if (v >= 0) json_object_set_new(o, key, json_integer(v));
}

char *ingest_wecom_props(const wecom_event *ev) {
    json_t *o = json_object();
    if (!o) return NULL;
    for (size_t i = 0; i < sizeof prop_strs / sizeof *prop_strs; i++) {
        if (prop_strs[i].unknown_only && ev->kind != WECOM_EV_UNKNOWN) continue;
        const char *s = *(char *const *)((const char *)ev + prop_strs[i].off);
        if (s) prop_str_set(o, prop_strs[i].key, s);
    }
    prop_int_set(o, "join_scene", ev->join_scene);
    prop_int_set(o, "quit_scene", ev->quit_scene);
    prop_int_set(o, "mem_change_cnt", ev->mem_change_cnt);
    if (ev->mem_change_list) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < ev->mem_change_list_len; i++) {
            json_t *v = json_string(ev->mem_change_list[i]);
            if (v) json_array_append_new(a, v);
        }
        if (a) json_object_set_new(o, "member_ids", a);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
