/* wecom_event.c — expat-driven parsing of WeCom callback XML.
 *
 * Role: turn the outer POST body into its <Encrypt> text, and the decrypted
 * plaintext into a wecom_event. Both use one small engine (xml_run) driven by a
 * table of known child elements of the root <xml>:
 *
 *     <xml>                       depth 1: must be named "xml"
 *       <Field>text</Field>       depth 2: known name -> collected, else skipped
 *       <MemChangeList>           depth 2: a list field
 *         <Item>text</Item>       depth 3: each Item collected
 *
 * Only character data directly inside a known element is collected (CDATA and
 * bare text alike); anything nested deeper is skipped.
 *
 * Invariants: every collected string lives in run.arena, addressed by offset
 * until parsing ends (the arena grows by realloc), then turned into pointers.
 * The arena never exceeds the input size plus one NUL per value, because
 * without a DTD expat can only shrink text (&lt; -> <). Each handler returns at
 * once after a failure, since expat may still call a few handlers after
 * XML_StopParser.
 *
 * Safety: a DOCTYPE or entity declaration stops the parse (no XXE, no entity
 * expansion); nesting, per-field length, item count and input size are bounded.
 *
 * Ownership: the arena and the item pointer array move into the wecom_event
 * (arena_, mem_change_list) and are freed by wecom_event_reset. The envelope's
 * Encrypt is copied into a fresh malloc'd string for the caller. */
#include "wecom/wecom_event.h"

#include <expat.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the engine -------------------------------------------------------- */

enum field_type { F_STR, F_INT, F_INT64, F_LIST };

typedef struct field_def {
    const char *name; /* element name, exact case */
    enum field_type type;
    size_t off; /* offsetof the member in wecom_event (event table only) */
    size_t max; /* byte limit of the text (per item for F_LIST) */
} field_def;

typedef struct slot {
    bool seen;
    size_t off; /* arena offset of the NUL-terminated text */
    size_t len;
} slot;

typedef struct xml_run {
    XML_Parser parser;
    const field_def *defs;
    size_t ndefs;
    slot *slots;     /* ndefs entries, caller's storage */
    int overlong_rc; /* code for a field over its max */

    char *arena;
    size_t arena_len, arena_cap;
    size_t *items; /* arena offsets of list items */
    size_t nitems, items_cap;

    int depth;
    int cur;         /* index of the field being collected at depth 2, or -1 */
    bool in_item;    /* collecting an <Item> at depth 3 */
    size_t item_off; /* arena offset where the current item starts */

    int rc; /* first error, 0 while fine */
    char msg[200];
} xml_run;

static void run_fail(xml_run *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void run_fail(xml_run *r, int rc, const char *fmt, ...) {
    if (r->rc) return;
    r->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    XML_StopParser(r->parser, XML_FALSE);
}

static bool arena_append(xml_run *r, const char *s, size_t n) {
    if (n > r->arena_cap - r->arena_len) {
        size_t cap = r->arena_cap ? r->arena_cap : 256;
        while (cap - r->arena_len < n)
            cap *= 2; /* bounded by WECOM_XML_MAX checks */
        char *a = realloc(r->arena, cap);
        if (!a) {
            run_fail(r, WECOM_E_NOMEM, "out of memory");
            return false;
        }
        r->arena = a;
        r->arena_cap = cap;
    }
    memcpy(r->arena + r->arena_len, s, n);
    r->arena_len += n;
    return true;
}

static int find_def(const xml_run *r, const char *name) {
    for (size_t i = 0; i < r->ndefs; i++)
        if (strcmp(r->defs[i].name, name) == 0) return (int)i;
    return -1;
}

static void start_list_item(xml_run *r) {
    const field_def *d = &r->defs[r->cur];
    if (r->nitems >= WECOM_MEM_CHANGE_MAX) {
        run_fail(r, WECOM_E_PARSE_XML, "%s has more than %d items", d->name, WECOM_MEM_CHANGE_MAX);
        return;
    }
    if (r->nitems == r->items_cap) {
        size_t cap = r->items_cap ? r->items_cap * 2 : 16;
        size_t *it = realloc(r->items, cap * sizeof *it);
        if (!it) {
            run_fail(r, WECOM_E_NOMEM, "out of memory");
            return;
        }
        r->items = it;
        r->items_cap = cap;
    }
    r->in_item = true;
    r->item_off = r->arena_len;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
    xml_run *r = ud;
    (void)attrs;
    if (r->rc) return;
    r->depth++;
    if (r->depth > WECOM_XML_DEPTH_MAX) {
        run_fail(r, WECOM_E_PARSE_XML, "elements nested deeper than %d", WECOM_XML_DEPTH_MAX);
        return;
    }
    if (r->depth == 1) {
        if (strcmp(name, "xml") != 0)
            run_fail(r, WECOM_E_PARSE_XML, "root element is <%.40s>, expected <xml>", name);
        return;
    }
    if (r->depth == 2) {
        int i = find_def(r, name);
        if (i < 0) return; /* unknown element: skipped */
        if (r->slots[i].seen) {
            run_fail(r, WECOM_E_PARSE_XML, "field %s appears twice", name);
            return;
        }
        r->slots[i].seen = true;
        r->slots[i].off = r->arena_len;
        r->cur = i;
        return;
    }
    if (r->depth == 3 && r->cur >= 0 && r->defs[r->cur].type == F_LIST && strcmp(name, "Item") == 0)
        start_list_item(r);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int n) {
    xml_run *r = ud;
    if (r->rc || r->cur < 0 || n <= 0) return;
    const field_def *d = &r->defs[r->cur];
    size_t start;
    if (r->depth == 2 && d->type != F_LIST)
        start = r->slots[r->cur].off;
    else if (r->depth == 3 && r->in_item)
        start = r->item_off;
    else
        return;
    if ((size_t)n > d->max - (r->arena_len - start)) {
        run_fail(r, r->overlong_rc, "field %s longer than %zu bytes", d->name, d->max);
        return;
    }
    arena_append(r, s, (size_t)n);
}

static void XMLCALL on_end(void *ud, const XML_Char *name) {
    xml_run *r = ud;
    (void)name;
    if (r->rc) return;
    if (r->depth == 3 && r->in_item) {
        if (arena_append(r, "", 1)) r->items[r->nitems++] = r->item_off;
        r->in_item = false;
    } else if (r->depth == 2 && r->cur >= 0) {
        slot *sl = &r->slots[r->cur];
        if (r->defs[r->cur].type != F_LIST) {
            sl->len = r->arena_len - sl->off;
            arena_append(r, "", 1);
        }
        r->cur = -1;
    }
    r->depth--;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset) {
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    run_fail(ud, WECOM_E_PARSE_XML, "DOCTYPE is not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation) {
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid, (void)pubid,
        (void)notation;
    run_fail(ud, WECOM_E_PARSE_XML, "entity declarations are not allowed");
}

/* Run expat over xml with r's table. Returns 0 or r->rc / WECOM_E_PARSE_XML
 * with r->msg set. r->arena / r->items are left for the caller to free. */
static int run_parse(xml_run *r, const char *xml, size_t len) {
    if (len > WECOM_XML_MAX) {
        snprintf(r->msg, sizeof r->msg, "XML body larger than %u bytes", WECOM_XML_MAX);
        return r->rc = WECOM_E_TOO_LARGE;
    }
    r->cur = -1;
    r->parser = XML_ParserCreate("UTF-8"); /* overrides the declared encoding */
    if (!r->parser) {
        snprintf(r->msg, sizeof r->msg, "out of memory");
        return r->rc = WECOM_E_NOMEM;
    }
    XML_SetUserData(r->parser, r);
    XML_SetElementHandler(r->parser, on_start, on_end);
    XML_SetCharacterDataHandler(r->parser, on_text);
    XML_SetStartDoctypeDeclHandler(r->parser, on_doctype);
    XML_SetEntityDeclHandler(r->parser, on_entity_decl);
    XML_SetParamEntityParsing(r->parser, XML_PARAM_ENTITY_PARSING_NEVER);

    if (XML_Parse(r->parser, xml ? xml : "", (int)len, XML_TRUE) != XML_STATUS_OK && !r->rc) {
        r->rc = WECOM_E_PARSE_XML;
        snprintf(r->msg, sizeof r->msg, "XML error at line %lu, column %lu: %s",
                 (unsigned long)XML_GetCurrentLineNumber(r->parser),
                 (unsigned long)XML_GetCurrentColumnNumber(r->parser),
                 XML_ErrorString(XML_GetErrorCode(r->parser)));
    }
    XML_ParserFree(r->parser);
    r->parser = NULL;
    return r->rc;
}

static bool is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Trim surrounding XML whitespace of s[0..*n): returns the new start. */
static const char *trim(const char *s, size_t *n) {
    while (*n && is_space(s[0]))
        s++, (*n)--;
    while (*n && is_space(s[*n - 1]))
        (*n)--;
    return s;
}

/* ---- envelope ---------------------------------------------------------- */

enum { ENV_TO_USER, ENV_ENCRYPT, ENV_AGENT_ID, ENV_NDEFS };

static const field_def envelope_defs[ENV_NDEFS] = {
    [ENV_TO_USER] = {"ToUserName", F_STR, 0, WECOM_FIELD_MAX},
    [ENV_ENCRYPT] = {"Encrypt", F_STR, 0, WECOM_ENCRYPT_MAX + 1024}, /* + whitespace */
    [ENV_AGENT_ID] = {"AgentID", F_STR, 0, WECOM_FIELD_MAX},
};

int wecom_envelope_parse(const char *xml, size_t len, char **encrypt_out, size_t *encrypt_len_out,
                         char *to_user, size_t to_user_cap) {
    slot slots[ENV_NDEFS] = {{0}};
    xml_run r = {.defs = envelope_defs,
                 .ndefs = ENV_NDEFS,
                 .slots = slots,
                 .overlong_rc = WECOM_E_TOO_LARGE};
    int rc;

    if (encrypt_out) *encrypt_out = NULL;
    if (encrypt_len_out) *encrypt_len_out = 0;
    if (to_user && to_user_cap) to_user[0] = '\0';
    if (!encrypt_out || (!xml && len)) return WECOM_E_INVALID_ARG;

    rc = run_parse(&r, xml, len);
    if (rc) goto done;
    rc = WECOM_E_PARSE_XML;
    if (!slots[ENV_ENCRYPT].seen) goto done;

    size_t n = slots[ENV_ENCRYPT].len;
    const char *enc = trim(r.arena + slots[ENV_ENCRYPT].off, &n);
    if (n == 0) goto done;
    rc = WECOM_E_TOO_LARGE;
    if (n > WECOM_ENCRYPT_MAX) goto done;

    rc = WECOM_E_PARSE_XML;
    if (to_user && to_user_cap && slots[ENV_TO_USER].seen) {
        if (slots[ENV_TO_USER].len >= to_user_cap) goto done;
        memcpy(to_user, r.arena + slots[ENV_TO_USER].off, slots[ENV_TO_USER].len + 1);
    }

    rc = WECOM_E_NOMEM;
    char *out = malloc(n + 1);
    if (!out) goto done;
    memcpy(out, enc, n);
    out[n] = '\0';
    *encrypt_out = out;
    if (encrypt_len_out) *encrypt_len_out = n;
    rc = WECOM_OK;
done:
    if (rc && to_user && to_user_cap) to_user[0] = '\0';
    free(r.arena);
    free(r.items);
    return rc;
}

/* ---- event ------------------------------------------------------------- */

#define STR(name, member)                                                                          \
    { name, F_STR, offsetof(wecom_event, member), WECOM_FIELD_MAX }
#define INT(name, member)                                                                          \
    { name, F_INT, offsetof(wecom_event, member), WECOM_FIELD_MAX }
#define INT64(name, member)                                                                        \
    { name, F_INT64, offsetof(wecom_event, member), WECOM_FIELD_MAX }

static const field_def event_defs[] = {
    STR("ToUserName", to_user_name),
    STR("FromUserName", from_user_name),
    INT64("CreateTime", create_time),
    STR("MsgType", msg_type),
    STR("Event", event),
    STR("AgentID", agent_id),
    STR("SuiteId", suite_id),
    STR("AuthCorpId", auth_corp_id),
    STR("InfoType", info_type),
    INT64("TimeStamp", time_stamp),
    STR("ChangeType", change_type),
    STR("UserID", user_id),
    STR("ExternalUserID", external_user_id),
    STR("State", state),
    STR("WelcomeCode", welcome_code),
    STR("Source", source),
    STR("FailReason", fail_reason),
    STR("ChatId", chat_id),
    STR("UpdateDetail", update_detail),
    INT("JoinScene", join_scene),
    INT("QuitScene", quit_scene),
    INT("MemChangeCnt", mem_change_cnt),
    {"MemChangeList", F_LIST, offsetof(wecom_event, mem_change_list), WECOM_FIELD_MAX},
    STR("LastMemVer", last_mem_ver),
    STR("CurMemVer", cur_mem_ver),
    STR("Id", id),
    STR("TagType", tag_type),
    STR("StrategyId", strategy_id),
    STR("MsgId", msg_id),
    STR("Content", content),
};

#undef STR
#undef INT
#undef INT64

#define EVENT_NDEFS (sizeof event_defs / sizeof event_defs[0])

static const char *const kind_names[WECOM_EV_KIND_COUNT] = {
    [WECOM_EV_UNKNOWN] = "unknown",
    [WECOM_EV_ADD_EXTERNAL_CONTACT] = "add_external_contact",
    [WECOM_EV_ADD_HALF_EXTERNAL_CONTACT] = "add_half_external_contact",
    [WECOM_EV_EDIT_EXTERNAL_CONTACT] = "edit_external_contact",
    [WECOM_EV_DEL_EXTERNAL_CONTACT] = "del_external_contact",
    [WECOM_EV_DEL_FOLLOW_USER] = "del_follow_user",
    [WECOM_EV_TRANSFER_FAIL] = "transfer_fail",
    [WECOM_EV_MSG_AUDIT_APPROVED] = "msg_audit_approved",
    [WECOM_EV_CHAT_CREATE] = "chat_create",
    [WECOM_EV_CHAT_UPDATE] = "chat_update",
    [WECOM_EV_CHAT_DISMISS] = "chat_dismiss",
    [WECOM_EV_TAG_CREATE] = "tag_create",
    [WECOM_EV_TAG_UPDATE] = "tag_update",
    [WECOM_EV_TAG_DELETE] = "tag_delete",
    [WECOM_EV_TAG_SHUFFLE] = "tag_shuffle",
};

static const struct kind_row {
    const char *event;
    const char *change_type;
    wecom_event_kind kind;
} kind_rows[] = {
    {"change_external_contact", "add_external_contact", WECOM_EV_ADD_EXTERNAL_CONTACT},
    {"change_external_contact", "add_half_external_contact", WECOM_EV_ADD_HALF_EXTERNAL_CONTACT},
    {"change_external_contact", "edit_external_contact", WECOM_EV_EDIT_EXTERNAL_CONTACT},
    {"change_external_contact", "del_external_contact", WECOM_EV_DEL_EXTERNAL_CONTACT},
    {"change_external_contact", "del_follow_user", WECOM_EV_DEL_FOLLOW_USER},
    {"change_external_contact", "transfer_fail", WECOM_EV_TRANSFER_FAIL},
    {"change_external_contact", "msg_audit_approved", WECOM_EV_MSG_AUDIT_APPROVED},
    {"change_external_chat", "create", WECOM_EV_CHAT_CREATE},
    {"change_external_chat", "update", WECOM_EV_CHAT_UPDATE},
    {"change_external_chat", "dismiss", WECOM_EV_CHAT_DISMISS},
    {"change_external_tag", "create", WECOM_EV_TAG_CREATE},
    {"change_external_tag", "update", WECOM_EV_TAG_UPDATE},
    {"change_external_tag", "delete", WECOM_EV_TAG_DELETE},
    {"change_external_tag", "shuffle", WECOM_EV_TAG_SHUFFLE},
};

const char *wecom_event_kind_name(wecom_event_kind kind) {
    if ((unsigned)kind >= WECOM_EV_KIND_COUNT) return "unknown";
    return kind_names[kind];
}

/* Kind from (Event, or the suite envelope's InfoType) and ChangeType. */
static wecom_event_kind classify(const wecom_event *ev) {
    const char *event = ev->event ? ev->event : ev->info_type;
    if (!event || !ev->change_type) return WECOM_EV_UNKNOWN;
    for (size_t i = 0; i < sizeof kind_rows / sizeof kind_rows[0]; i++)
        if (strcmp(kind_rows[i].event, event) == 0 &&
            strcmp(kind_rows[i].change_type, ev->change_type) == 0)
            return kind_rows[i].kind;
    return WECOM_EV_UNKNOWN;
}

void wecom_event_reset(wecom_event *ev) {
    if (!ev) return;
    free(ev->arena_);
    free(ev->mem_change_list);
    memset(ev, 0, sizeof *ev);
    ev->create_time = -1;
    ev->time_stamp = -1;
    ev->join_scene = -1;
    ev->quit_scene = -1;
    ev->mem_change_cnt = -1;
    ev->kind = WECOM_EV_UNKNOWN;
}

/* Parse the decimal text s[0..n) (whitespace around allowed, empty = absent)
 * into *out, at most max. Returns false if it is not a number in 0..max. */
static bool parse_count(const char *s, size_t n, int64_t max, int64_t *out) {
    s = trim(s, &n);
    if (n == 0) {
        *out = -1;
        return true;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        int d = s[i] - '0';
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Move the collected values of r into ev. Returns 0 or WECOM_E_PARSE_XML /
 * WECOM_E_NOMEM with r->msg set. */
static int event_fill(wecom_event *ev, xml_run *r) {
    char *base = ev->arena_; /* already moved out of r */
    for (size_t i = 0; i < EVENT_NDEFS; i++) {
        const field_def *d = &event_defs[i];
        const slot *sl = &r->slots[i];
        char *member = (char *)ev + d->off;
        if (!sl->seen) continue;
        if (d->type == F_STR) {
            char *p = base + sl->off;
            memcpy(member, &p, sizeof p);
        } else if (d->type == F_INT || d->type == F_INT64) {
            int64_t v;
            if (!parse_count(base + sl->off, sl->len, d->type == F_INT ? INT_MAX : INT64_MAX, &v)) {
                snprintf(r->msg, sizeof r->msg, "field %s is not a non-negative integer", d->name);
                return WECOM_E_PARSE_XML;
            }
            if (d->type == F_INT) {
                int iv = (int)v;
                memcpy(member, &iv, sizeof iv);
            } else {
                memcpy(member, &v, sizeof v);
            }
        } else { /* F_LIST */
            char **list = malloc((r->nitems + 1) * sizeof *list);
            if (!list) {
                snprintf(r->msg, sizeof r->msg, "out of memory");
                return WECOM_E_NOMEM;
            }
            for (size_t k = 0; k < r->nitems; k++)
                list[k] = base + r->items[k];
            list[r->nitems] = NULL;
            ev->mem_change_list = list;
            ev->mem_change_list_len = r->nitems;
        }
    }
    ev->kind = classify(ev);
    return WECOM_OK;
}

int wecom_event_parse(const char *xml, size_t len, wecom_event *ev, char *errbuf, size_t errcap) {
    slot slots[EVENT_NDEFS];
    xml_run r = {
        .defs = event_defs, .ndefs = EVENT_NDEFS, .slots = slots, .overlong_rc = WECOM_E_PARSE_XML};
    int rc;

    memset(slots, 0, sizeof slots);
    if (errbuf && errcap) errbuf[0] = '\0';
    if (!ev) return WECOM_E_INVALID_ARG;
    memset(ev, 0, sizeof *ev);
    wecom_event_reset(ev);
    rc = WECOM_E_INVALID_ARG;
    if (!xml && len) goto done;

    rc = run_parse(&r, xml, len);
    if (rc) goto done;
    /* The arena moves into ev first, so a failed fill is cleaned by the reset. */
    ev->arena_ = r.arena;
    ev->arena_len_ = r.arena_len;
    r.arena = NULL;
    rc = event_fill(ev, &r);
done:
    if (rc) {
        if (errbuf && errcap) snprintf(errbuf, errcap, "%s", r.msg[0] ? r.msg : "invalid argument");
        wecom_event_reset(ev);
    }
    free(r.arena);
    free(r.items);
    return rc;
}

/* True if p is NULL or a NUL-terminated string inside ev's arena. */
static bool in_arena(const wecom_event *ev, const char *p) {
    if (!p) return true;
    if (!ev->arena_) return false;
    /* Integer compare: p may point anywhere if ev is corrupt. */
    uintptr_t lo = (uintptr_t)ev->arena_, at = (uintptr_t)p;
    if (at < lo || at - lo >= ev->arena_len_) return false;
    size_t left = ev->arena_len_ - (size_t)(at - lo);
    return memchr(p, '\0', left) != NULL;
}

bool wecom_event_validate(const wecom_event *ev, const char **why) {
    const char *reason = NULL;
    if (!ev) {
        reason = "NULL event";
        goto done;
    }
    for (size_t i = 0; i < EVENT_NDEFS && !reason; i++) {
        const field_def *d = &event_defs[i];
        const char *member = (const char *)ev + d->off;
        if (d->type == F_STR) {
            const char *p;
            memcpy(&p, member, sizeof p);
            if (!in_arena(ev, p))
                reason = "string outside the arena";
            else if (p && strlen(p) > d->max)
                reason = "string longer than its limit";
        } else if (d->type == F_INT) {
            int v;
            memcpy(&v, member, sizeof v);
            if (v < -1) reason = "integer field below -1";
        } else if (d->type == F_INT64) {
            int64_t v;
            memcpy(&v, member, sizeof v);
            if (v < -1) reason = "integer field below -1";
        }
    }
    if (reason) goto done;
    if (!ev->mem_change_list && ev->mem_change_list_len)
        reason = "list length without list";
    else if (ev->mem_change_list_len > WECOM_MEM_CHANGE_MAX)
        reason = "list too long";
    else if (ev->mem_change_list && ev->mem_change_list[ev->mem_change_list_len])
        reason = "list not NULL-terminated";
    for (size_t k = 0; !reason && ev->mem_change_list && k < ev->mem_change_list_len; k++)
        if (!ev->mem_change_list[k] || !in_arena(ev, ev->mem_change_list[k]))
            reason = "list item outside the arena";
    if (!reason && (unsigned)ev->kind >= WECOM_EV_KIND_COUNT) reason = "kind out of range";
    if (!reason && ev->kind != classify(ev)) reason = "kind does not match Event/ChangeType";
done:
    if (why) *why = reason;
    return reason == NULL;
}
