/* api_group.c — customer group chats (read side): the list, one group with
 * its members, and the paginated member list.
 *
 * Scope (applied in store/customer.c): admin/operator see every group of the
 * tenant; a manager the groups owned by an employee of their department
 * subtree; an employee the groups they own or are a member of ('in'). Other
 * groups answer 404. Nothing here writes. */
#include "api/api.h"
#include "store/customer.h"

static void reply(http_resp *w, int rc, json_t *j, const siyu_err *err) {
    if (rc == 0)
        http_json(w, 200, j);
    else
        http_error_err(w, err);
}

static int page_args(http_req *r, customer_list_kind kind, customer_page *p, siyu_err *err) {
    return customer_page_parse(http_query(r, "limit"), http_query(r, "cursor"), kind, p, err);
}

static void groups_list_read(http_req *r, http_resp *w, store_conn *c) {
    customer_group_filter f = {.status = http_query(r, "status"), .owner = http_query(r, "owner")};
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    int rc = page_args(r, CUSTOMER_LIST_GROUPS, &p, &err);
    if (!rc) rc = customer_group_list_json(c, &r->auth, &f, &p, &j, &err);
    reply(w, rc, j, &err);
}

static void groups_list(http_req *r, http_resp *w) {
    api_read(r, w, groups_list_read);
}

/* The detail embeds the first page of members (?limit=, default 500). */
static void group_get_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    const char *limit = http_query(r, "limit");
    int rc = customer_page_parse(limit ? limit : "500", NULL, CUSTOMER_LIST_MEMBERS, &p, &err);
    if (!rc) rc = customer_group_get_json(c, &r->auth, id, &p, &j, &err);
    reply(w, rc, j, &err);
}

static void group_get(http_req *r, http_resp *w) {
    api_read(r, w, group_get_read);
}

static void group_members_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    int rc = page_args(r, CUSTOMER_LIST_MEMBERS, &p, &err);
    if (!rc) rc = customer_group_members_json(c, &r->auth, id, &p, &j, &err);
    reply(w, rc, j, &err);
}

static void group_members(http_req *r, http_resp *w) {
    api_read(r, w, group_members_read);
}

const http_route api_group_routes[] = {
    {"GET", "/api/v1/group-chats", groups_list, ROLES_TENANT,
     "List customer group chats in scope (filters: status=active|dismissed, owner userid; "
     "limit, cursor)",
     0},
    {"GET", "/api/v1/group-chats/{id}", group_get, ROLES_TENANT,
     "A group chat with its first page of members (members_next_cursor continues on "
     "/members)",
     0},
    {"GET", "/api/v1/group-chats/{id}/members", group_members, ROLES_TENANT,
     "A group chat's members (limit, cursor)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
