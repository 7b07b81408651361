/* demo.c — `siyu demo-seed`: a small, deterministic sample tenant for `make
 * demo`. Everything goes through the same code paths production uses: the
 * organisation write steps, WeCom callbacks parsed from XML and applied by the
 * callback ingestion, and behaviour events through the events batch parser.
 * Re-running it on a seeded directory adds nothing and prints fresh tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "ingest/events.h"
#include "ingest/ingest_wecom.h"
#include "store/org.h"
#include "store/store.h"
#include "store/tag.h"
#include "store/tenant.h"
#include "wecom/wecom_event.h"

#define DEMO_NAME "Demo Brand 示例品牌"
#define DEMO_CORP "ww5823bf96d3bd56c7"
#define DEMO_TOKEN "QDG6eK"
#define DEMO_AES "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) { /* xorshift64*, fixed seed: same demo every time */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

static int64_t find_demo(store *st) {
    store_conn *c = store_reader_acquire(st);
    if (!c) return -1;
    sqlite3_stmt *s = store_conn_stmt(c, "SELECT tenant_id FROM tenant WHERE name=?1");
    int64_t id = 0;
    if (s) {
        sqlite3_bind_text(s, 1, DEMO_NAME, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW) id = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
    }
    store_reader_release(st, c);
    return id;
}

static int64_t mk(store *st, int (*fn)(store_conn *, void *), org_input *in) {
    in->actor = "demo";
    int rc = store_write(st, fn, in);
    if (rc != 0) {
        fprintf(stderr, "siyu demo-seed: %s\n", in->err.msg[0] ? in->err.msg : siyu_strerror(rc));
        return -1;
    }
    return in->id;
}

static int64_t dept(store *st, int64_t t, const char *name, int64_t parent) {
    org_input in = {.tenant_id = t, .name = {true, name}};
    if (parent) in.parent_id = (org_ref){true, false, parent};
    return mk(st, org_department_create, &in);
}

static int64_t shop(store *st, int64_t t, const char *name, int64_t d, const char *city) {
    org_input in = {.tenant_id = t, .name = {true, name}, .city = {true, city},
                    .department_id = {true, false, d}};
    return mk(st, org_store_create, &in);
}

static int64_t emp(store *st, int64_t t, const char *userid, const char *name, int64_t d,
                   int64_t s) {
    org_input in = {.tenant_id = t, .userid = userid, .name = {true, name},
                    .department_id = {true, false, d}};
    if (s) in.store_id = (org_ref){true, false, s};
    return mk(st, org_employee_create, &in);
}

/* Parses a decrypted-callback XML and applies it exactly as the receiver does. */
static int callback(store *st, int64_t t, const char *xml) {
    wecom_event ev = {0};
    char err[256];
    int rc = wecom_event_parse(xml, strlen(xml), &ev, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "siyu demo-seed: bad event XML: %s\n", err);
        return rc;
    }
    char key[INGEST_DEDUPE_KEY_SIZE];
    ingest_wecom_dedupe_key(ev.create_time, xml, strlen(xml), key);
    ingest_wecom_cmd cmd = {.tenant_id = t, .ev = &ev, .dedupe_key = key};
    rc = store_write(st, ingest_wecom_step, &cmd);
    wecom_event_reset(&ev);
    return rc;
}

static int contact(store *st, int64_t t, const char *change, const char *userid,
                   const char *ext, int64_t ts, const char *extra) {
    char xml[1024];
    snprintf(xml, sizeof xml,
             "<xml><ToUserName><![CDATA[" DEMO_CORP "]]></ToUserName><FromUserName><![CDATA[sys]]>"
             "</FromUserName><CreateTime>%lld</CreateTime><MsgType><![CDATA[event]]></MsgType>"
             "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[%s]]>"
             "</ChangeType><UserID><![CDATA[%s]]></UserID><ExternalUserID><![CDATA[%s]]>"
             "</ExternalUserID>%s</xml>",
             (long long)ts, change, userid, ext, extra ? extra : "");
    return callback(st, t, xml);
}

static int chat(store *st, int64_t t, const char *change, const char *chat_id, int64_t ts,
                const char *extra) {
    char xml[4096];
    snprintf(xml, sizeof xml,
             "<xml><ToUserName><![CDATA[" DEMO_CORP "]]></ToUserName><FromUserName><![CDATA[sys]]>"
             "</FromUserName><CreateTime>%lld</CreateTime><MsgType><![CDATA[event]]></MsgType>"
             "<Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[%s]]></ChatId>"
             "<ChangeType><![CDATA[%s]]></ChangeType>%s</xml>",
             (long long)ts, chat_id, change, extra ? extra : "");
    return callback(st, t, xml);
}

static const char *const channels[] = {"store_qr", "live_stream", "tmall_card", "douyin_ad",
                                       "wechat_article", "referral"};
static const char *const event_types[] = {"page_view", "product_view", "add_to_cart", "order",
                                          "coupon_claim"};

static int seed_events(store *st, int64_t t, int ncust, int64_t now) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return SIYU_ENOMEM;
    fputs("{\"events\":[", f);
    for (int i = 0; i < 600; i++) {
        const char *type = event_types[rnd(5)];
        fprintf(f, "%s{\"idempotency_key\":\"demo-%d\",\"type\":\"%s\",\"ts\":%lld,"
                   "\"external_userid\":\"wmDEMO%06d\",\"props\":{\"page\":\"/p/%u\"",
                i ? "," : "", i, type, (long long)(now - rnd(30 * 86400)), (int)rnd((uint32_t)ncust),
                rnd(40));
        if (!strcmp(type, "order")) fprintf(f, ",\"amount\":%u.%02u", 49 + rnd(900), rnd(100));
        fputs("}}", f);
    }
    fputs("]}", f);
    fclose(f);
    events_batch b = {0};
    siyu_err err = {0};
    int rc = events_batch_parse(buf, len, &b, &err);
    if (rc == 0) {
        b.tenant_id = t;
        b.actor = "demo";
        rc = store_write(st, events_batch_store, &b);
        if (rc != 0) err = b.err;
    }
    if (rc != 0) fprintf(stderr, "siyu demo-seed: events: %s\n", err.msg);
    events_batch_free(&b);
    free(buf);
    return rc;
}

/* Two tag groups, and tags on a deterministic share of the customers, set by
 * an operator through the same bulk step the API uses. */
static int seed_tags(store *st, int64_t t, int ncust) {
    static const struct {
        const char *group;
        const char *tags[3];
    } groups[] = {{"客户等级 Level", {"VIP", "普通 Regular", NULL}},
                  {"兴趣 Interest", {"护肤 Skincare", "彩妆 Makeup", "香水 Fragrance"}}};
    for (size_t g = 0; g < 2; g++) {
        tag_group_input gi = {.tenant_id = t, .name = groups[g].group, .actor = "demo"};
        int rc = store_write(st, tag_group_create, &gi);
        if (rc != 0) return rc;
        for (int k = 0; k < 3 && groups[g].tags[k]; k++) {
            tag_input ti = {.tenant_id = t, .group_id = gi.id, .name = groups[g].tags[k],
                            .actor = "demo"};
            if ((rc = store_write(st, tag_create, &ti)) != 0) return rc;
            char ids[4096], tag[32];
            size_t off = 0, n = 0;
            off += (size_t)snprintf(ids, sizeof ids, "[");
            for (int c = 1; c <= ncust && off < sizeof ids - 16; c++)
                if (rnd(5) == 0)
                    off += (size_t)snprintf(ids + off, sizeof ids - off, "%s%d", n++ ? "," : "", c);
            snprintf(ids + off, sizeof ids - off, "]");
            snprintf(tag, sizeof tag, "[%lld]", (long long)ti.id);
            tag_bulk b = {.auth = {.tenant_id = t, .role = ROLE_OPERATOR}, .tag_ids = tag,
                          .ntags = 1, .customer_ids = ids, .ncustomers = n, .actor = "demo"};
            if (n && (rc = store_write(st, tag_bulk_apply, &b)) != 0) {
                fprintf(stderr, "siyu demo-seed: tags: %s\n", b.err.msg);
                return rc;
            }
        }
    }
    return 0;
}

static int seed(store *st, int64_t *tenant_out) {
    tenant_input tin = {.name = DEMO_NAME, .corp_id = DEMO_CORP, .callback_token = DEMO_TOKEN,
                        .aes_key = DEMO_AES, .actor = "demo"};
    int rc = store_write(st, tenant_create, &tin);
    if (rc != 0) {
        fprintf(stderr, "siyu demo-seed: %s\n", tin.err.msg);
        return rc;
    }
    int64_t t = *tenant_out = tin.id;
    int64_t hq = dept(st, t, "总部 Headquarters", 0);
    int64_t east = dept(st, t, "华东区 East", hq), north = dept(st, t, "华北区 North", hq);
    int64_t sh = shop(st, t, "上海南京西路店", east, "上海"), hz = shop(st, t, "杭州湖滨店", east, "杭州");
    int64_t bj = shop(st, t, "北京三里屯店", north, "北京");
    if (hq < 0 || east < 0 || north < 0 || sh < 0 || hz < 0 || bj < 0) return SIYU_EIO;
    static const struct {
        const char *userid, *name;
        int region, store;
    } staff[] = {{"zhangsan", "张三", 0, 0}, {"lisi", "李四", 0, 0},   {"wangwu", "王五", 0, 1},
                 {"zhaoliu", "赵六", 0, 1},  {"sunqi", "孙七", 1, 2},  {"zhouba", "周八", 1, 2},
                 {"wujiu", "吴九", 1, 2},    {"ops_amy", "Amy (运营)", 2, -1}};
    int64_t shops[] = {sh, hz, bj}, depts[] = {east, north, hq};
    for (size_t i = 0; i < sizeof staff / sizeof *staff; i++)
        if (emp(st, t, staff[i].userid, staff[i].name, depts[staff[i].region],
                staff[i].store >= 0 ? shops[staff[i].store] : 0) < 0)
            return SIYU_EIO;
    int64_t now = siyu_now(), start = now - 60 * 86400;
    enum { NCUST = 240 };
    char ext[32], extra[128];
    for (int i = 0; i < NCUST && rc == 0; i++) {
        snprintf(ext, sizeof ext, "wmDEMO%06d", i);
        const char *u = staff[rnd(7)].userid;
        int64_t ts = start + (int64_t)i * (60 * 86400 / NCUST);
        snprintf(extra, sizeof extra, "<State><![CDATA[%s]]></State>", channels[rnd(6)]);
        rc = contact(st, t, "add_external_contact", u, ext, ts, extra);
        uint32_t fate = rnd(20);
        if (rc == 0 && fate == 0) /* the customer deleted the employee */
            rc = contact(st, t, "del_follow_user", u, ext, ts + 86400 * (1 + rnd(20)), NULL);
        else if (rc == 0 && fate == 1) /* the employee deleted the customer */
            rc = contact(st, t, "del_external_contact", u, ext, ts + 86400 * (1 + rnd(20)), NULL);
        else if (rc == 0 && fate == 2) /* a second employee also added them */
            rc = contact(st, t, "add_external_contact", staff[rnd(7)].userid, ext, ts + 3600,
                         "<State><![CDATA[referral]]></State>");
    }
    /* Two customer groups with members joining and leaving. */
    for (int g = 0; g < 2 && rc == 0; g++) {
        char chat_id[40], members[1024] = "";
        snprintf(chat_id, sizeof chat_id, "wrDEMOGROUP%02d", g);
        rc = chat(st, t, "create", chat_id, start + 86400 * (g + 1), NULL);
        size_t off = 0;
        for (int k = 0; k < 12; k++)
            off += (size_t)snprintf(members + off, sizeof members - off,
                                    "<Item>wmDEMO%06d</Item>", g * 40 + k * 3);
        char xml[1400];
        snprintf(xml, sizeof xml, "<UpdateDetail><![CDATA[add_member]]></UpdateDetail>"
                 "<JoinScene>3</JoinScene><MemChangeCnt>12</MemChangeCnt>"
                 "<MemChangeList>%s</MemChangeList>", members);
        if (rc == 0) rc = chat(st, t, "update", chat_id, start + 86400 * (g + 2), xml);
        snprintf(xml, sizeof xml, "<UpdateDetail><![CDATA[del_member]]></UpdateDetail>"
                 "<QuitScene>0</QuitScene><MemChangeCnt>1</MemChangeCnt>"
                 "<MemChangeList><Item>wmDEMO%06d</Item></MemChangeList>", g * 40);
        if (rc == 0) rc = chat(st, t, "update", chat_id, start + 86400 * (g + 10), xml);
    }
    if (rc == 0) rc = seed_tags(st, t, NCUST);
    if (rc == 0) rc = seed_events(st, t, NCUST, now);
    if (rc != 0) fprintf(stderr, "siyu demo-seed: seeding failed: %s\n", siyu_strerror(rc));
    return rc;
}

static int print_token(store *st, int64_t tenant, int role, const char *employee,
                       const char *what) {
    auth_token_new tok = {.tenant_id = tenant, .role = role, .employee_userid = employee,
                          .label = "demo", .actor = "demo"};
    int rc = store_write(st, auth_token_insert, &tok);
    if (rc != 0) {
        fprintf(stderr, "siyu demo-seed: %s\n", tok.err.msg);
        return rc;
    }
    printf("  %-34s %s\n", what, tok.token);
    return 0;
}

int cli_demo_seed(int argc, char **argv) {
    static const char *const allowed[] = {"data", NULL};
    static const char usage[] = "usage: siyu demo-seed --data DIR\n"
                                "  Seeds a sample tenant (once) and prints tokens to try the API.\n";
    if (cli_check_flags(argc, argv, allowed, usage)) return 2;
    const char *data = cli_flag(argc, argv, "data");
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    store *st = store_open(data ? data : "./demo-data", &o, &err);
    if (!st) {
        fprintf(stderr, "siyu demo-seed: %s\n", err.msg);
        return 1;
    }
    rng_state = 0x5eed5eed12345678ULL;
    int64_t t = find_demo(st);
    int rc = 0;
    if (t == 0) {
        rc = seed(st, &t);
        if (rc == 0) printf("siyu demo-seed: seeded tenant %lld \"%s\"\n", (long long)t, DEMO_NAME);
    } else if (t > 0) {
        printf("siyu demo-seed: tenant %lld is already seeded\n", (long long)t);
    } else {
        rc = SIYU_EIO;
    }
    if (rc == 0) {
        printf("API tokens (shown once):\n");
        rc = print_token(st, 0, ROLE_ADMIN, NULL, "platform admin (tenants):");
        if (!rc) rc = print_token(st, t, ROLE_ADMIN, NULL, "tenant admin:");
        if (!rc) rc = print_token(st, t, ROLE_OPERATOR, NULL, "operator:");
        if (!rc) rc = print_token(st, t, ROLE_MANAGER, "ops_amy", "manager (ops_amy, HQ tree):");
        if (!rc) rc = print_token(st, t, ROLE_EMPLOYEE, "zhangsan", "employee (zhangsan):");
        printf("WeCom callback URL: /wecom/callback/%lld (corp %s, token %s, aes key %s)\n"
               "Try: curl -H 'Authorization: Bearer <tenant admin>' "
               "http://127.0.0.1:8080/api/v1/customers\n",
               (long long)t, DEMO_CORP, DEMO_TOKEN, DEMO_AES);
    }
    store_close(st);
    return rc == 0 ? 0 : 1;
}
