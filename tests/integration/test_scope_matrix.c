/* test_scope_matrix.c — who may call what on whose data: the role × route ×
 * (own customer / other customer / team customer / other tenant) matrix.
 *
 * Two tables drive it:
 *   matrix[]  {role, method, path, body, expected status} — one request each;
 *   lists[]   {role, path, expected item ids} — what a list shows each role.
 * test_routes_covered() fails when a route of the server's route table
 * (api_all_routes) has no row in matrix[]: a new route must come with its
 * rows. Add rows, not code.
 *
 * Fixture (ids are fixed): tenant A (1) has departments HQ(10) > East(11) >
 * Sub(12) and HQ > West(13); employees boss(100, East; the manager token),
 * emp(101, Sub; the employee token), other(102, West), leaver(104); store 50;
 * tag groups 1, 3, 4 and tags 300, 302, 303 (3, 4, 302, 303 get deleted). Customers: OWN 1000
 * (active with emp), OTHER 1001 (active with other), TEAM 1002 (active with
 * boss), GONE 1003 (emp's relationship ended). Group chats 500 (owner emp),
 * 501 (owner other); channel groups 70 (71, 73 get deleted) and channels 80
 * (81, 82 get deleted) with emp on duty. Tenant B (2) has department 20,
 * store 60, employee 200 (userid "emp"), customer 1500, group chat 600, tag
 * group 2, tag 310, channel group 72, channel 90.
 * Rows run in order and some write, so test_lists runs first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "testlib.h"

enum { R_PLATFORM, R_ADMIN, R_OPERATOR, R_MANAGER, R_EMPLOYEE, R_NONE, R_BAD, R_ADMIN_B, R_N };
static const char *const role_names[R_N] = {"platform", "admin", "operator", "manager",
                                            "employee", "none",  "bad",      "admin_b"};

typedef struct row {
    int role;
    const char *method;
    const char *path;
    const char *body; /* JSON or NULL */
    long status;
} row;

/* Expands to one row per role of the seven (platform .. bad). */
#define ROLES7(m, p, b, pl, ad, op, mg, em)                                                        \
    {R_PLATFORM, m, p, b, pl}, {R_ADMIN, m, p, b, ad}, {R_OPERATOR, m, p, b, op},                  \
        {R_MANAGER, m, p, b, mg}, {R_EMPLOYEE, m, p, b, em}, {R_NONE, m, p, b, 401}, {             \
        R_BAD, m, p, b, 401                                                                        \
    }
/* A tenant-data GET: the platform is refused, the tenant roles as given. */
#define TENANT_GET(p, ad, op, mg, em) ROLES7("GET", p, NULL, 403, ad, op, mg, em)

/* An organisation or catalogue write: admin and operator (each with its own
 * body, for unique names) get ok, the other roles are refused. */
#define OFFICE_WRITE(m, p, body_admin, body_op, ok)                                                \
    {R_PLATFORM, m, p, body_admin, 403}, {R_ADMIN, m, p, body_admin, ok},                          \
        {R_OPERATOR, m, p, body_op, ok}, {R_MANAGER, m, p, body_admin, 403},                       \
        {R_EMPLOYEE, m, p, body_admin, 403}, {R_NONE, m, p, body_admin, 401}, {                    \
        R_BAD, m, p, body_admin, 401                                                               \
    }
/* A destructive office write: admin on path_admin, operator on path_op. */
#define OFFICE_PAIR(m, path_admin, path_op, ok)                                                    \
    {R_PLATFORM, m, path_admin, NULL, 403}, {R_MANAGER, m, path_admin, NULL, 403},                 \
        {R_EMPLOYEE, m, path_admin, NULL, 403}, {R_NONE, m, path_admin, NULL, 401},                \
        {R_BAD, m, path_admin, NULL, 401}, {R_ADMIN, m, path_admin, NULL, ok}, {                   \
        R_OPERATOR, m, path_op, NULL, ok                                                           \
    }
#define BULK(tag, customer)                                                                        \
    "{\"action\":\"tag\",\"tag_ids\":[" tag "],\"customer_ids\":[" customer "]}"
#define XFER(from, to, customer)                                                                   \
    "{\"handover_employee_id\":" from ",\"takeover_employee_id\":" to                              \
    ",\"customer_ids\":[" customer "]}"
#define EVENT(key, customer)                                                                       \
    "{\"events\":[{\"idempotency_key\":\"" key "\",\"type\":\"visit\",\"ts\":1700000000,"          \
    "\"customer_id\":" customer "}]}"

#define HANDOVER(from, to) "{\"handover_employee_id\":" from ",\"takeover_employee_ids\":[" to "]}"
#define ASSIGN(from, to) "{\"handover_employee_id\":" from ",\"takeover_employee_id\":" to "}"
#define CHANNEL(name, employee) "{\"name\":\"" name "\",\"staff\":[{\"employee_id\":" employee "}]}"

#define WRULE(name, channel)                                                                       \
    "{\"name\":\"" name "\",\"text\":\"Hi {customer_name|there}\",\"conditions\":{"             \
    "\"channel_ids\":[" channel "]}}"
#define TRULE(name, tag)                                                                           \
    "{\"name\":\"" name "\",\"trigger\":\"stage\",\"params\":{\"stage\":\"vip\"},"              \
    "\"tag_ids\":[" tag "]}"

#define OWN "1000"
#define OTHER "1001"
#define TEAM "1002"
#define GONE "1003"
#define TENANT_B "1500"

static const row matrix[] = {
    /* customers */
    TENANT_GET("/api/v1/customers", 200, 200, 200, 200),
    TENANT_GET("/api/v1/customers/" OWN, 200, 200, 200, 200),
    TENANT_GET("/api/v1/customers/" OTHER, 200, 200, 404, 404),
    TENANT_GET("/api/v1/customers/" TEAM, 200, 200, 200, 404),
    TENANT_GET("/api/v1/customers/" GONE, 200, 200, 404, 404),
    TENANT_GET("/api/v1/customers/" TENANT_B, 404, 404, 404, 404),
    TENANT_GET("/api/v1/customers/424242", 404, 404, 404, 404),
    {R_ADMIN_B, "GET", "/api/v1/customers/" OWN, NULL, 404},
    {R_ADMIN_B, "GET", "/api/v1/customers/" TENANT_B, NULL, 200},
    /* timelines */
    TENANT_GET("/api/v1/customers/" OWN "/events", 200, 200, 200, 200),
    TENANT_GET("/api/v1/customers/" OTHER "/events", 200, 200, 404, 404),
    TENANT_GET("/api/v1/customers/" TEAM "/events", 200, 200, 200, 404),
    TENANT_GET("/api/v1/customers/" TENANT_B "/events", 404, 404, 404, 404),
    {R_ADMIN_B, "GET", "/api/v1/customers/" OWN "/events", NULL, 404},
    /* relationships */
    TENANT_GET("/api/v1/relationships", 200, 200, 200, 200),
    TENANT_GET("/api/v1/relationships?customer=" OTHER, 200, 200, 200, 200),
    /* group chats */
    TENANT_GET("/api/v1/group-chats", 200, 200, 200, 200),
    TENANT_GET("/api/v1/group-chats/500", 200, 200, 200, 200),
    TENANT_GET("/api/v1/group-chats/501", 200, 200, 404, 404),
    TENANT_GET("/api/v1/group-chats/600", 404, 404, 404, 404),
    TENANT_GET("/api/v1/group-chats/500/members", 200, 200, 200, 200),
    TENANT_GET("/api/v1/group-chats/501/members", 200, 200, 404, 404),
    TENANT_GET("/api/v1/group-chats/600/members", 404, 404, 404, 404),
    {R_ADMIN_B, "GET", "/api/v1/group-chats/600", NULL, 200},
    {R_ADMIN_B, "GET", "/api/v1/group-chats/500", NULL, 404},
    /* customer fields: admin and operator, within the tenant */
    ROLES7("PATCH", "/api/v1/customers/" OWN, "{\"stage\":\"vip\"}", 403, 200, 200, 403, 403),
    ROLES7("PATCH", "/api/v1/customers/" TENANT_B, "{\"stage\":\"vip\"}", 403, 404, 404, 403, 403),
    {R_ADMIN_B, "PATCH", "/api/v1/customers/" OWN, "{\"stage\":\"vip\"}", 404},
    /* segments: every tenant role, each within its scope (test_api_segment checks the
     * numbers); phones and saved-segment writes need admin or operator */
    ROLES7("POST", "/api/v1/segments/count", "{\"expr\":\"\"}", 403, 200, 200, 200, 200),
    ROLES7("POST", "/api/v1/segments/list", "{\"expr\":\"\"}", 403, 200, 200, 200, 200),
    ROLES7("POST", "/api/v1/segments/breakdown", "{\"by\":\"tag\"}", 403, 200, 200, 200, 200),
    ROLES7("POST", "/api/v1/segments/export", "{\"format\":\"csv\"}", 403, 200, 200, 200, 200),
    ROLES7("POST", "/api/v1/segments/export", "{\"format\":\"phone_md5\"}", 403, 200, 200, 403,
           403),
    TENANT_GET("/api/v1/segments", 200, 200, 200, 200),
    OFFICE_WRITE("POST", "/api/v1/segments", "{\"name\":\"S-admin\",\"expr\":\"\"}",
                 "{\"name\":\"S-op\",\"expr\":\"\"}", 201), /* segments 1 and 2 */
    TENANT_GET("/api/v1/segments/1", 200, 200, 200, 200),
    {R_ADMIN_B, "GET", "/api/v1/segments/1", NULL, 404},
    OFFICE_WRITE("PATCH", "/api/v1/segments/1", "{\"description\":\"d\"}",
                 "{\"description\":\"e\"}", 200),
    {R_ADMIN_B, "PATCH", "/api/v1/segments/1", "{\"description\":\"x\"}", 404},
    /* audit log: tenant admins only */
    TENANT_GET("/api/v1/audit-log", 200, 403, 403, 403),
    /* relationship remark: the relationship scope; an ended one is a 409 */
    ROLES7("PATCH", "/api/v1/customers/" OWN "/relationships/101", "{\"remark\":\"r\"}", 403, 200,
           200, 200, 200),
    ROLES7("PATCH", "/api/v1/customers/" OTHER "/relationships/102", "{\"remark\":\"r\"}", 403, 200,
           200, 404, 404),
    ROLES7("PATCH", "/api/v1/customers/" GONE "/relationships/101", "{\"remark\":\"r\"}", 403, 409,
           409, 409, 409),
    ROLES7("PATCH", "/api/v1/customers/" TENANT_B "/relationships/200", "{\"remark\":\"r\"}", 403,
           404, 404, 404, 404),
    {R_ADMIN_B, "PATCH", "/api/v1/customers/" TENANT_B "/relationships/200", "{\"remark\":\"r\"}",
     200},
    /* transfers: admin/operator, a manager within their subtree, never an employee */
    {R_PLATFORM, "POST", "/api/v1/transfers", XFER("102", "101", OTHER), 403},
    {R_EMPLOYEE, "POST", "/api/v1/transfers", XFER("101", "100", OWN), 403},
    {R_NONE, "POST", "/api/v1/transfers", XFER("101", "100", OWN), 401},
    {R_BAD, "POST", "/api/v1/transfers", XFER("101", "100", OWN), 401},
    {R_MANAGER, "POST", "/api/v1/transfers", XFER("102", "101", OTHER), 403},
    {R_ADMIN_B, "POST", "/api/v1/transfers", XFER("102", "101", OTHER), 400},
    {R_ADMIN, "POST", "/api/v1/transfers", XFER("102", "101", OTHER), 201},   /* transfer 1 */
    {R_OPERATOR, "POST", "/api/v1/transfers", XFER("100", "101", TEAM), 201}, /* transfer 2 */
    {R_MANAGER, "POST", "/api/v1/transfers", XFER("101", "100", OWN), 201},   /* transfer 3 */
    {R_ADMIN, "POST", "/api/v1/transfers", XFER("101", "101", OWN), 400},     /* same employee */
    TENANT_GET("/api/v1/transfers", 200, 200, 200, 403),
    TENANT_GET("/api/v1/transfers/1", 200, 200, 200, 403),
    TENANT_GET("/api/v1/transfers/424242", 404, 404, 404, 403),
    {R_ADMIN_B, "GET", "/api/v1/transfers/1", NULL, 404},
    /* tenants: the platform manages them; a tenant admin sees its own */
    ROLES7("GET", "/api/v1/tenants", NULL, 200, 403, 403, 403, 403),
    ROLES7("GET", "/api/v1/tenants/1", NULL, 200, 200, 403, 403, 403),
    ROLES7("GET", "/api/v1/tenants/2", NULL, 200, 404, 403, 403, 403),
    ROLES7("PATCH", "/api/v1/tenants/1", "{\"name\":\"Tenant A\"}", 200, 200, 403, 403, 403),
    ROLES7("PATCH", "/api/v1/tenants/2", "{\"name\":\"Tenant B\"}", 200, 404, 403, 403, 403),
    ROLES7("POST", "/api/v1/tenants", "{\"name\":\"Tenant C\"}", 201, 403, 403, 403, 403),
    /* tokens: the platform must name the tenant; an admin only its own */
    ROLES7("POST", "/api/v1/tokens", "{\"role\":\"operator\"}", 400, 201, 403, 403, 403),
    ROLES7("POST", "/api/v1/tokens", "{\"role\":\"operator\",\"tenant_id\":2}", 201, 404, 403, 403,
           403),
    /* organisation (no data scope: every tenant role reads; admin/operator write) */
    TENANT_GET("/api/v1/departments", 200, 200, 200, 200),
    TENANT_GET("/api/v1/departments/12", 200, 200, 200, 200),
    TENANT_GET("/api/v1/departments/20", 404, 404, 404, 404),
    OFFICE_WRITE("POST", "/api/v1/departments", "{\"name\":\"D-admin\"}", "{\"name\":\"D-op\"}",
                 201),
    OFFICE_WRITE("PATCH", "/api/v1/departments/13", "{\"name\":\"West\"}", "{\"name\":\"West\"}",
                 200),
    OFFICE_WRITE("PATCH", "/api/v1/departments/20", "{\"name\":\"X\"}", "{\"name\":\"X\"}", 404),
    TENANT_GET("/api/v1/stores", 200, 200, 200, 200),
    TENANT_GET("/api/v1/stores/50", 200, 200, 200, 200),
    TENANT_GET("/api/v1/stores/60", 404, 404, 404, 404),
    OFFICE_WRITE("POST", "/api/v1/stores", "{\"name\":\"S-admin\"}", "{\"name\":\"S-op\"}", 201),
    OFFICE_WRITE("PATCH", "/api/v1/stores/50", "{\"city\":\"Shanghai\"}", "{\"city\":\"Shanghai\"}",
                 200),
    OFFICE_WRITE("PATCH", "/api/v1/stores/60", "{\"city\":\"X\"}", "{\"city\":\"X\"}", 404),
    TENANT_GET("/api/v1/employees", 200, 200, 200, 200),
    TENANT_GET("/api/v1/employees/102", 200, 200, 200, 200),
    TENANT_GET("/api/v1/employees/200", 404, 404, 404, 404),
    OFFICE_WRITE("POST", "/api/v1/employees", "{\"userid\":\"new_admin\"}",
                 "{\"userid\":\"new_op\"}", 201),
    OFFICE_WRITE("PATCH", "/api/v1/employees/102", "{\"name\":\"Other\"}", "{\"name\":\"Other\"}",
                 200),
    OFFICE_WRITE("PATCH", "/api/v1/employees/200", "{\"name\":\"X\"}", "{\"name\":\"X\"}", 404),
    OFFICE_WRITE("POST", "/api/v1/employees/104/resign", NULL, NULL, 200),
    OFFICE_WRITE("POST", "/api/v1/employees/200/resign", NULL, NULL, 404),
    /* tag catalogue (no data scope) */
    TENANT_GET("/api/v1/tag-groups", 200, 200, 200, 200),
    TENANT_GET("/api/v1/tag-groups/1", 200, 200, 200, 200),
    TENANT_GET("/api/v1/tag-groups/2", 404, 404, 404, 404),
    OFFICE_WRITE("POST", "/api/v1/tag-groups", "{\"name\":\"G-admin\"}", "{\"name\":\"G-op\"}",
                 201),
    OFFICE_WRITE("PATCH", "/api/v1/tag-groups/1", "{\"sort_order\":1}", "{\"sort_order\":1}", 200),
    OFFICE_WRITE("PATCH", "/api/v1/tag-groups/2", "{\"sort_order\":1}", "{\"sort_order\":1}", 404),
    TENANT_GET("/api/v1/tags", 200, 200, 200, 200),
    TENANT_GET("/api/v1/tags/300", 200, 200, 200, 200),
    TENANT_GET("/api/v1/tags/310", 404, 404, 404, 404),
    OFFICE_WRITE("POST", "/api/v1/tags", "{\"group_id\":1,\"name\":\"T-admin\"}",
                 "{\"group_id\":1,\"name\":\"T-op\"}", 201),
    OFFICE_WRITE("PATCH", "/api/v1/tags/300", "{\"sort_order\":2}", "{\"sort_order\":2}", 200),
    OFFICE_WRITE("PATCH", "/api/v1/tags/310", "{\"sort_order\":2}", "{\"sort_order\":2}", 404),
    /* bulk tagging: any tenant role, only customers in scope */
    ROLES7("POST", "/api/v1/tags/bulk", BULK("300", OWN), 403, 200, 200, 200, 200),
    ROLES7("POST", "/api/v1/tags/bulk", BULK("300", OTHER), 403, 200, 200, 404, 404),
    ROLES7("POST", "/api/v1/tags/bulk", BULK("300", TEAM), 403, 200, 200, 200, 404),
    ROLES7("POST", "/api/v1/tags/bulk", BULK("300", TENANT_B), 403, 404, 404, 404, 404),
    ROLES7("POST", "/api/v1/tags/bulk", BULK("310", OWN), 403, 404, 404, 404, 404),
    /* behaviour events: admin/operator; another tenant's customer is unknown */
    ROLES7("POST", "/api/v1/events", EVENT("m-1", OTHER), 403, 200, 200, 403, 403),
    ROLES7("POST", "/api/v1/events", EVENT("m-2", TENANT_B), 403, 400, 400, 403, 403),
    /* full sync: admin/operator of the tenant; the fixture tenants have no WeCom secret */
    ROLES7("GET", "/api/v1/sync", NULL, 403, 200, 200, 403, 403),
    ROLES7("GET", "/api/v1/sync/runs", NULL, 403, 200, 200, 403, 403),
    ROLES7("POST", "/api/v1/sync", "{}", 403, 400, 400, 403, 403),
    /* outbox and welcome messages: admin and operator, own tenant's rows only */
    TENANT_GET("/api/v1/outbox", 200, 200, 403, 403),
    TENANT_GET("/api/v1/outbox?state=dead&kind=send_welcome_msg", 200, 200, 403, 403),
    TENANT_GET("/api/v1/outbox/stats", 200, 200, 403, 403),
    TENANT_GET("/api/v1/outbox/3", 200, 200, 403, 403),
    TENANT_GET("/api/v1/outbox/2", 404, 404, 403, 403),
    {R_ADMIN_B, "GET", "/api/v1/outbox/2", NULL, 200},
    {R_ADMIN_B, "GET", "/api/v1/outbox/3", NULL, 404},
    OFFICE_PAIR("POST", "/api/v1/outbox/1/retry", "/api/v1/outbox/4/retry", 200),
    OFFICE_WRITE("POST", "/api/v1/outbox/3/retry", NULL, NULL, 409),
    OFFICE_WRITE("POST", "/api/v1/outbox/2/retry", NULL, NULL, 404),
    OFFICE_PAIR("POST", "/api/v1/outbox/5/cancel", "/api/v1/outbox/6/cancel", 200),
    OFFICE_WRITE("POST", "/api/v1/outbox/3/cancel", NULL, NULL, 409),
    OFFICE_WRITE("POST", "/api/v1/outbox/2/cancel", NULL, NULL, 404),
    TENANT_GET("/api/v1/welcome", 200, 200, 403, 403),
    OFFICE_WRITE("PUT", "/api/v1/welcome", "{\"text\":\"Hi\"}", "{\"text\":\"Hello\"}", 200),
    TENANT_GET("/api/v1/welcome/log", 200, 200, 403, 403),
    /* welcome rules (20-22 tenant A, 23 tenant B), the log and counts: admin/operator */
    TENANT_GET("/api/v1/welcome-rules", 200, 200, 403, 403),
    TENANT_GET("/api/v1/welcome-rules/20", 200, 200, 403, 403),
    TENANT_GET("/api/v1/welcome-rules/23", 404, 404, 403, 403),
    {R_ADMIN_B, "GET", "/api/v1/welcome-rules/23", NULL, 200},
    TENANT_GET("/api/v1/welcome-rules/preview?employee=101&channel=80&customer=1000", 200, 200,
               403, 403),
    TENANT_GET("/api/v1/welcome-rules/preview?employee=200", 400, 400, 403, 403),
    TENANT_GET("/api/v1/welcome-rules/preview?employee=101&channel=90", 400, 400, 403, 403),
    TENANT_GET("/api/v1/welcome-rules/preview?employee=101&customer=1500", 400, 400, 403, 403),
    OFFICE_WRITE("POST", "/api/v1/welcome-rules", WRULE("WR-admin", "80"), WRULE("WR-op", "80"),
                 201),
    OFFICE_WRITE("POST", "/api/v1/welcome-rules", WRULE("WR-b", "90"), WRULE("WR-b", "90"), 400),
    OFFICE_WRITE("PUT", "/api/v1/welcome-rules/20", WRULE("WR20", "80"), WRULE("WR20", "80"),
                 200),
    OFFICE_WRITE("PUT", "/api/v1/welcome-rules/23", WRULE("WR23", "80"), WRULE("WR23", "80"),
                 404),
    OFFICE_PAIR("DELETE", "/api/v1/welcome-rules/21", "/api/v1/welcome-rules/22", 200),
    OFFICE_WRITE("DELETE", "/api/v1/welcome-rules/23", NULL, NULL, 404),
    TENANT_GET("/api/v1/welcomes", 200, 200, 403, 403),
    TENANT_GET("/api/v1/welcomes?outcome=late", 200, 200, 403, 403),
    TENANT_GET("/api/v1/welcomes/counts", 200, 200, 403, 403),
    /* auto-tag rules (30-32 tenant A, 33 tenant B): admin/operator; tag 310 is B's */
    TENANT_GET("/api/v1/tag-rules", 200, 200, 403, 403),
    TENANT_GET("/api/v1/tag-rules/30", 200, 200, 403, 403),
    TENANT_GET("/api/v1/tag-rules/33", 404, 404, 403, 403),
    {R_ADMIN_B, "GET", "/api/v1/tag-rules/33", NULL, 200},
    OFFICE_WRITE("POST", "/api/v1/tag-rules", TRULE("TR-admin", "300"), TRULE("TR-op", "300"),
                 201),
    OFFICE_WRITE("POST", "/api/v1/tag-rules", TRULE("TR-b", "310"), TRULE("TR-b", "310"), 400),
    OFFICE_WRITE("PUT", "/api/v1/tag-rules/30", TRULE("TR30", "300"), TRULE("TR30", "300"), 200),
    OFFICE_WRITE("PUT", "/api/v1/tag-rules/33", TRULE("TR33", "300"), TRULE("TR33", "300"), 404),
    OFFICE_PAIR("DELETE", "/api/v1/tag-rules/31", "/api/v1/tag-rules/32", 200),
    OFFICE_WRITE("DELETE", "/api/v1/tag-rules/33", NULL, NULL, 404),
    /* channel QR codes: catalogue reads for every tenant role, admin/operator writes */
    TENANT_GET("/api/v1/channel-groups", 200, 200, 200, 200),
    TENANT_GET("/api/v1/channel-groups/70", 200, 200, 200, 200),
    TENANT_GET("/api/v1/channel-groups/72", 404, 404, 404, 404),
    OFFICE_WRITE("POST", "/api/v1/channel-groups", "{\"name\":\"CG-admin\"}",
                 "{\"name\":\"CG-op\"}", 201),
    OFFICE_WRITE("PATCH", "/api/v1/channel-groups/70", "{\"sort_order\":1}", "{\"sort_order\":2}",
                 200),
    OFFICE_WRITE("PATCH", "/api/v1/channel-groups/72", "{\"sort_order\":1}", "{\"sort_order\":1}",
                 404),
    {R_ADMIN_B, "GET", "/api/v1/channel-groups/72", NULL, 200},
    TENANT_GET("/api/v1/channels", 200, 200, 200, 200),
    TENANT_GET("/api/v1/channels/80", 200, 200, 200, 200),
    TENANT_GET("/api/v1/channels/90", 404, 404, 404, 404),
    {R_ADMIN_B, "GET", "/api/v1/channels/90", NULL, 200},
    {R_ADMIN_B, "GET", "/api/v1/channels/80", NULL, 404},
    TENANT_GET("/api/v1/channels/stats", 200, 200, 200, 200),
    TENANT_GET("/api/v1/channels/80/stats", 200, 200, 200, 200),
    TENANT_GET("/api/v1/channels/90/stats", 404, 404, 404, 404),
    TENANT_GET("/api/v1/channels/80/roster", 200, 200, 200, 200),
    TENANT_GET("/api/v1/channels/90/roster", 404, 404, 404, 404),
    OFFICE_WRITE("POST", "/api/v1/channels", CHANNEL("C-admin", "101"), CHANNEL("C-op", "101"),
                 201),
    {R_ADMIN, "POST", "/api/v1/channels", CHANNEL("C-x", "200"), 400}, /* B's employee */
    OFFICE_WRITE("PATCH", "/api/v1/channels/80", "{\"daily_cap\":5}", "{\"daily_cap\":6}", 200),
    OFFICE_WRITE("PATCH", "/api/v1/channels/90", "{\"daily_cap\":5}", "{\"daily_cap\":5}", 404),
    /* inheritance (F3): handover spread like transfers (a manager within their subtree, up
     * front); the screen, the rule and assignments are office tools. The fixture's customers
     * already have transfers in flight: the handover answers 201 refusing them one by one. */
    ROLES7("POST", "/api/v1/inheritance/handover", HANDOVER("101", "100"), 403, 201, 201, 201, 403),
    {R_MANAGER, "POST", "/api/v1/inheritance/handover", HANDOVER("102", "101"), 403},
    {R_MANAGER, "POST", "/api/v1/inheritance/handover", HANDOVER("101", "102"), 403},
    {R_ADMIN_B, "POST", "/api/v1/inheritance/handover", HANDOVER("101", "100"), 400},
    OFFICE_WRITE("POST", "/api/v1/inheritance/assign", ASSIGN("104", "101"), ASSIGN("104", "101"),
                 200),
    {R_ADMIN_B, "POST", "/api/v1/inheritance/assign", ASSIGN("104", "101"), 400},
    TENANT_GET("/api/v1/inheritance/summary", 200, 200, 403, 403),
    TENANT_GET("/api/v1/inheritance/pending", 200, 200, 403, 403),
    TENANT_GET("/api/v1/inheritance/rule", 200, 200, 403, 403),
    OFFICE_WRITE("PUT", "/api/v1/inheritance/rule", "{\"mode\":\"manual\"}",
                 "{\"mode\":\"store_round_robin\"}", 200),
    {R_ADMIN, "PUT", "/api/v1/inheritance/rule",
     "{\"store_managers\":[{\"store_id\":60,\"employee_id\":101}]}", 400}, /* B's store */
    {R_ADMIN_B, "PUT", "/api/v1/inheritance/rule",
     "{\"store_managers\":[{\"store_id\":50,\"employee_id\":101}]}", 400}, /* A's store */
    /* customer groups (F7): office tools */
    TENANT_GET("/api/v1/group-tags", 200, 200, 403, 403),
    OFFICE_WRITE("POST", "/api/v1/group-tags", "{\"name\":\"GT-admin\"}", "{\"name\":\"GT-op\"}",
                 201), /* group tags 1 and 2 */
    OFFICE_WRITE("PUT", "/api/v1/group-chats/500/tags", "{\"tag_ids\":[1]}", "{\"tag_ids\":[1,2]}",
                 200),
    OFFICE_WRITE("PUT", "/api/v1/group-chats/600/tags", "{\"tag_ids\":[1]}", "{\"tag_ids\":[1]}",
                 404),
    {R_ADMIN_B, "PUT", "/api/v1/group-chats/600/tags", "{\"tag_ids\":[1]}", 400},
    TENANT_GET("/api/v1/group-tags/1/group-chats", 200, 200, 403, 403),
    {R_ADMIN_B, "GET", "/api/v1/group-tags/1/group-chats", NULL, 404},
    TENANT_GET("/api/v1/group-chats/500/stats?from=2026-01-01&to=2026-01-07", 200, 200, 403, 403),
    TENANT_GET("/api/v1/group-chats/600/stats?from=2026-01-01&to=2026-01-07", 404, 404, 403, 403),
    TENANT_GET("/api/v1/group-stats?from=2026-01-01&to=2026-01-07", 200, 200, 403, 403),
    OFFICE_WRITE("POST", "/api/v1/group-qrs", "{\"name\":\"Q-admin\",\"group_ids\":[500]}",
                 "{\"name\":\"Q-op\",\"group_ids\":[500,501]}", 201), /* codes 1 and 2 */
    {R_ADMIN, "POST", "/api/v1/group-qrs", "{\"name\":\"Q-x\",\"group_ids\":[600]}", 400},
    TENANT_GET("/api/v1/group-qrs", 200, 200, 403, 403),
    TENANT_GET("/api/v1/group-qrs/1", 200, 200, 403, 403),
    {R_ADMIN_B, "GET", "/api/v1/group-qrs/1", NULL, 404},
    /* WeCom callbacks: public, but only for a configured receiver */
    {R_NONE, "GET", "/wecom/callback/1", NULL, 404},
    {R_NONE, "POST", "/wecom/callback/1", "<xml></xml>", 404},
    /* public */
    {R_NONE, "GET", "/healthz", NULL, 200},
    {R_NONE, "GET", "/metrics", NULL, 200},
    {R_NONE, "GET", "/api/v1/openapi.json", NULL, 200},
    /* deletes last: they remove fixture rows */
    OFFICE_PAIR("DELETE", "/api/v1/tag-groups/3", "/api/v1/tag-groups/4", 204),
    OFFICE_WRITE("DELETE", "/api/v1/tag-groups/2", NULL, NULL, 404),
    OFFICE_PAIR("DELETE", "/api/v1/tags/302", "/api/v1/tags/303", 204),
    OFFICE_WRITE("DELETE", "/api/v1/tags/310", NULL, NULL, 404),
    {R_ADMIN_B, "DELETE", "/api/v1/segments/1", NULL, 404},
    OFFICE_PAIR("DELETE", "/api/v1/segments/1", "/api/v1/segments/2", 204),
    OFFICE_PAIR("DELETE", "/api/v1/channels/81", "/api/v1/channels/82", 204),
    OFFICE_WRITE("DELETE", "/api/v1/channels/90", NULL, NULL, 404),
    OFFICE_PAIR("DELETE", "/api/v1/channel-groups/71", "/api/v1/channel-groups/73", 204),
    OFFICE_WRITE("DELETE", "/api/v1/channel-groups/72", NULL, NULL, 404),
    {R_ADMIN_B, "DELETE", "/api/v1/group-qrs/1", NULL, 404},
    OFFICE_PAIR("DELETE", "/api/v1/group-qrs/1", "/api/v1/group-qrs/2", 204),
    {R_ADMIN_B, "DELETE", "/api/v1/group-tags/1", NULL, 404},
    OFFICE_PAIR("DELETE", "/api/v1/group-tags/1", "/api/v1/group-tags/2", 204),
};

typedef struct list_row {
    int role;
    const char *path;
    const char *ids; /* item ids in order, comma-separated */
} list_row;

static const list_row lists[] = {
    {R_ADMIN, "/api/v1/customers", "1000,1001,1002,1003"},
    {R_OPERATOR, "/api/v1/customers", "1000,1001,1002,1003"},
    {R_MANAGER, "/api/v1/customers", "1000,1002"},
    {R_EMPLOYEE, "/api/v1/customers", "1000"},
    {R_ADMIN_B, "/api/v1/customers", "1500"},
    {R_EMPLOYEE, "/api/v1/customers?employee=other", ""},
    {R_ADMIN, "/api/v1/customers?segment=", "1000,1001,1002,1003"},
    {R_MANAGER, "/api/v1/customers?segment=", "1000,1002"},
    {R_EMPLOYEE, "/api/v1/customers?segment=", "1000"},
    {R_ADMIN_B, "/api/v1/customers?segment=", "1500"},
    {R_EMPLOYEE, "/api/v1/customers?segment=tag(300)", ""},
    {R_MANAGER, "/api/v1/customers?status=lost", ""},
    {R_ADMIN, "/api/v1/customers?status=lost", "1003"},
    {R_ADMIN, "/api/v1/relationships", "1,2,3,4"},
    {R_MANAGER, "/api/v1/relationships", "1,3,4"},
    {R_EMPLOYEE, "/api/v1/relationships", "1,4"},
    {R_EMPLOYEE, "/api/v1/relationships?customer=" OTHER, ""},
    {R_ADMIN_B, "/api/v1/relationships", "5"},
    {R_ADMIN, "/api/v1/group-chats", "500,501"},
    {R_MANAGER, "/api/v1/group-chats", "500"},
    {R_EMPLOYEE, "/api/v1/group-chats", "500"},
    {R_ADMIN_B, "/api/v1/group-chats", "600"},
    {R_EMPLOYEE, "/api/v1/customers/" OWN "/events", "1"},
    {R_ADMIN_B, "/api/v1/customers/" TENANT_B "/events", "9"},
    {R_ADMIN, "/api/v1/outbox", "6,5,4,3,1"},
    {R_OPERATOR, "/api/v1/outbox?state=dead", "4,1"},
    {R_ADMIN, "/api/v1/outbox?limit=2&cursor=5", "4,3"},
    {R_ADMIN_B, "/api/v1/outbox", "2"},
};

static const char fixture_sql[] =
    "INSERT INTO department(id,tenant_id,name,parent_id,created_at,updated_at) VALUES"
    " (10,1,'HQ',NULL,1,1),(11,1,'East',10,1,1),(12,1,'Sub',11,1,1),(13,1,'West',10,1,1),"
    " (20,2,'HQ',NULL,1,1);"
    "INSERT INTO store(id,tenant_id,name,department_id,created_at,updated_at) VALUES"
    " (50,1,'Store A',12,1,1),(60,2,'Store B',20,1,1);"
    "INSERT INTO employee(id,tenant_id,userid,name,department_id,created_at,updated_at) VALUES"
    " (100,1,'boss','Boss',11,1,1),(101,1,'emp','Emp',12,1,1),(102,1,'other','Other',13,1,1),"
    " (104,1,'leaver','Leaver',13,1,1),(200,2,'emp','Emp B',20,1,1);"
    "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES"
    " (1,1,'Level',1,1),(2,2,'Level',1,1),(3,1,'Del1',1,1),(4,1,'Del2',1,1);"
    "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
    " (300,1,1,'VIP',1,1),(302,1,1,'Del1',1,1),(303,1,1,'Del2',1,1),(310,2,2,'VIP',1,1);"
    "INSERT INTO customer(id,tenant_id,external_userid,name,created_at,updated_at) VALUES"
    " (1000,1,'wmOwn','Own',1,1),(1001,1,'wmOther','Other',1,1),(1002,1,'wmTeam','Team',1,1),"
    " (1003,1,'wmGone','Gone',1,1),(1500,2,'wmOwn','B',1,1);"
    "INSERT INTO relationship(id,tenant_id,customer_id,employee_id,status,added_at,"
    "updated_at) VALUES (1,1,1000,101,'active',10,10),(2,1,1001,102,'active',10,10),"
    " (3,1,1002,100,'active',10,10),(4,1,1003,101,'deleted_by_customer',10,10),"
    " (5,2,1500,200,'active',10,10);"
    "INSERT INTO identity(tenant_id,customer_id,kind,value,created_at) VALUES"
    " (1,1000,'wecom_external_userid','wmOwn',1),(1,1001,'wecom_external_userid','wmOther',1),"
    " (1,1002,'wecom_external_userid','wmTeam',1),(1,1003,'wecom_external_userid','wmGone',1),"
    " (2,1500,'wecom_external_userid','wmOwn',1);"
    "INSERT INTO group_chat(id,tenant_id,chat_id,name,owner_userid,created_at,updated_at) VALUES"
    " (500,1,'wr1','Emp group','emp',1,1),(501,1,'wr2','Other group','other',1,1),"
    " (600,2,'wr1','B group','emp',1,1);"
    "INSERT INTO group_member(tenant_id,group_id,member_id,customer_id,employee_id,status) VALUES"
    " (1,500,'wmOwn',1000,NULL,'in'),(1,501,'wmOther',1001,NULL,'in'),"
    " (2,600,'wmOwn',1500,NULL,'in');"
    "INSERT INTO event(id,tenant_id,customer_id,type,ts,source) VALUES"
    " (1,1,1000,'message',100,'api'),(2,1,1001,'message',100,'api'),"
    " (3,1,1002,'message',100,'api'),(9,2,1500,'message',100,'api');"
    /* pending rows wait far in the future, so the workers leave them alone */
    "INSERT INTO outbox(id,tenant_id,kind,body,lane,state,next_at,created_at,updated_at) VALUES"
    " (1,1,'send_welcome_msg','{}',0,'dead',0,1,1),(2,2,'mark_tag','{}',1,'dead',0,1,1),"
    " (3,1,'mark_tag','{}',1,'sent',0,1,1),(4,1,'mark_tag','{}',1,'dead',0,1,1),"
    " (5,1,'mark_tag','{}',1,'pending',9000000000000000,1,1),"
    " (6,1,'mark_tag','{}',1,'pending',9000000000000000,1,1);"
    "INSERT INTO channel_group(id,tenant_id,name,created_at,updated_at) VALUES"
    " (70,1,'Stores',1,1),(71,1,'Del1',1,1),(72,2,'Stores',1,1),(73,1,'Del2',1,1);"
    "INSERT INTO channel(id,tenant_id,group_id,name,state,type,created_at,updated_at) VALUES"
    " (80,1,70,'Door','syfixture80','multi',1,1),(81,1,NULL,'Del1','syfixture81','multi',1,1),"
    " (82,1,NULL,'Del2','syfixture82','multi',1,1),(90,2,72,'Door','syfixture90','multi',1,1);"
    "INSERT INTO channel_staff(tenant_id,channel_id,employee_id,role,position) VALUES"
    " (1,80,101,'duty',0),(1,81,101,'duty',0),(1,82,101,'duty',0),(2,90,200,'duty',0);"
    "INSERT INTO welcome_rule(id,tenant_id,name,priority,text,created_at,updated_at) VALUES"
    " (20,1,'R20',10,'Hi',1,1),(21,1,'R21',20,'Hi',1,1),(22,1,'R22',30,'Hi',1,1),"
    " (23,2,'R23',10,'Hi',1,1);"
    "INSERT INTO tag_rule(id,tenant_id,name,trigger,params,tag_ids,created_at,updated_at) VALUES"
    " (30,1,'T30','stage','{\"stage\":\"x\"}','[300]',1,1),"
    " (31,1,'T31','stage','{\"stage\":\"x\"}','[300]',1,1),"
    " (32,1,'T32','stage','{\"stage\":\"x\"}','[300]',1,1),"
    " (33,2,'T33','stage','{\"stage\":\"x\"}','[310]',1,1);";

typedef struct fx {
    char *dir;
    t_server srv;
    char *tok[R_N];
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    /* clang-format off */
    const t_token_spec tokens[] = {
        {&f->tok[R_PLATFORM], NULL, "admin",    NULL},
        {&f->tok[R_ADMIN],    "1",  "admin",    NULL},
        {&f->tok[R_OPERATOR], "1",  "operator", NULL},
        {&f->tok[R_MANAGER],  "1",  "manager",  "boss"},
        {&f->tok[R_EMPLOYEE], "1",  "employee", "emp"},
        {&f->tok[R_ADMIN_B],  "2",  "admin",    NULL},
    };
    /* clang-format on */
    *state = f;
    /* Well-formed but unknown. */
    f->tok[R_BAD] = strdup("sy_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    if (!f->tok[R_BAD]) return -1;
    return t_fixture_start(&f->dir, &f->srv, fixture_sql, tokens, sizeof tokens / sizeof *tokens);
}

static int teardown(void **state) {
    fx *f = *state;
    if (!f) return 0;
    t_fixture_stop(&f->dir, &f->srv, NULL, 0); /* the tokens are freed below */
    for (int r = 0; r < R_N; r++)
        free(f->tok[r]);
    free(f);
    return 0;
}

static void test_matrix(void **state) {
    fx *f = *state;
    int failed = 0;
    for (size_t i = 0; i < sizeof matrix / sizeof *matrix; i++) {
        const row *m = &matrix[i];
        t_resp r;
        int rc = t_http(&f->srv, m->method, m->path, f->tok[m->role], m->body,
                        m->body ? strlen(m->body) : 0, NULL, &r);
        bool ok = rc == 0 && r.status == m->status;
        /* Every refusal carries an error code. */
        if (ok && r.status >= 400) ok = t_err_code(&r)[0] != 0;
        if (!ok) {
            fprintf(stderr, "matrix: %s %s %s: got %ld%s, want %ld: %s\n", role_names[m->role],
                    m->method, m->path, r.status, rc ? " (transport error)" : "", m->status,
                    r.body ? r.body : "");
            failed++;
        }
        t_resp_free(&r);
        if (rc != 0) break; /* the server is gone */
    }
    assert_int_equal(failed, 0);
}

static void test_lists(void **state) {
    fx *f = *state;
    int failed = 0;
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        const list_row *l = &lists[i];
        t_resp r;
        assert_int_equal(t_api(&f->srv, "GET", l->path, f->tok[l->role], &r, NULL), 0);
        char got[512] = "";
        size_t k = 0, n;
        json_t *it;
        json_array_foreach(json_object_get(r.json, "items"), n, it) {
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", n ? "," : "",
                                  (long long)json_integer_value(json_object_get(it, "id")));
            if (k >= sizeof got) break;
        }
        if (r.status != 200 || strcmp(got, l->ids) != 0) {
            fprintf(stderr, "lists: %s %s: got %ld [%s], want [%s]\n", role_names[l->role], l->path,
                    r.status, got, l->ids);
            failed++;
        }
        t_resp_free(&r);
    }
    assert_int_equal(failed, 0);
}

/* True when a concrete path (query ignored) matches a route template. */
static bool path_matches(const char *tmpl, const char *path) {
    while (*tmpl && *path && *path != '?') {
        if (*tmpl == '{') {
            while (*tmpl && *tmpl != '/')
                tmpl++;
            while (*path && *path != '/' && *path != '?')
                path++;
            continue;
        }
        if (*tmpl++ != *path++) return false;
    }
    return *tmpl == 0 && (*path == 0 || *path == '?');
}

static bool covered(const char *method, const char *tmpl) {
    for (size_t i = 0; i < sizeof matrix / sizeof *matrix; i++)
        if (strcasecmp(matrix[i].method, method) == 0 && path_matches(tmpl, matrix[i].path))
            return true;
    return false;
}

/* Every row of the server's route table (api_all_routes) has a matrix row. */
static void test_routes_covered(void **state) {
    (void)state;
    int missing = 0;
    for (const http_route *const *t = api_all_routes; *t; t++) {
        for (const http_route *rt = *t; rt->method; rt++) {
            if (covered(rt->method, rt->path)) continue;
            fprintf(stderr,
                    "scope matrix: no row for %s %s; add rows to matrix[] in "
                    "tests/integration/test_scope_matrix.c\n",
                    rt->method, rt->path);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists), /* first: the matrix writes */
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_routes_covered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
