/* wecom_event.h — parse WeCom callback XML: the outer POST envelope and the
 * decrypted customer-contact event (project WeCom spec §1.6 and §2).
 *
 * Both parsers run expat with no DTD support at all (a DOCTYPE is an error, so
 * no external entities and no entity expansion), a nesting limit and size
 * limits. Unknown elements are ignored; unknown events parse fine and come out
 * as WECOM_EV_UNKNOWN so they can be stored rather than rejected.
 *
 * A wecom_event is caller-owned storage (wecom_event_parse fills it,
 * wecom_event_reset releases it); every string in it points into memory the
 * struct owns and lives until wecom_event_reset. */
#ifndef SIYU_WECOM_EVENT_H
#define SIYU_WECOM_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wecom/wecom_crypto.h" /* WECOM_E_* codes */

#define WECOM_XML_MAX (WECOM_ENCRYPT_MAX + (64u << 10)) /* bytes of XML accepted */
#define WECOM_XML_DEPTH_MAX 8                           /* element nesting, root = 1 */
#define WECOM_FIELD_MAX 4096                            /* bytes per event field / list item */
#define WECOM_MEM_CHANGE_MAX 2000                       /* MemChangeList items */

/* What happened, from (Event or InfoType, ChangeType). */
typedef enum wecom_event_kind {
    WECOM_EV_UNKNOWN = 0, /* anything else, including plain messages */
    /* Event=change_external_contact */
    WECOM_EV_ADD_EXTERNAL_CONTACT,
    WECOM_EV_ADD_HALF_EXTERNAL_CONTACT,
    WECOM_EV_EDIT_EXTERNAL_CONTACT,
    WECOM_EV_DEL_EXTERNAL_CONTACT,
    WECOM_EV_DEL_FOLLOW_USER,
    WECOM_EV_TRANSFER_FAIL,
    WECOM_EV_MSG_AUDIT_APPROVED,
    /* Event=change_external_chat */
    WECOM_EV_CHAT_CREATE,
    WECOM_EV_CHAT_UPDATE,
    WECOM_EV_CHAT_DISMISS,
    /* Event=change_external_tag */
    WECOM_EV_TAG_CREATE,
    WECOM_EV_TAG_UPDATE,
    WECOM_EV_TAG_DELETE,
    WECOM_EV_TAG_SHUFFLE,
    WECOM_EV_KIND_COUNT
} wecom_event_kind;

/* A decrypted callback. Strings are NULL when the element is absent (an empty
 * element gives ""); integers are -1 when absent or empty. */
typedef struct wecom_event {
    wecom_event_kind kind;
    /* envelope (self-built app / customer-contact receiver) */
    char *to_user_name;   /* ToUserName: CorpID */
    char *from_user_name; /* FromUserName: "sys" for events */
    int64_t create_time;  /* CreateTime, epoch seconds */
    char *msg_type;       /* MsgType: "event", "text", ... */
    char *event;          /* Event */
    char *agent_id;       /* AgentID (plain messages) */
    /* envelope (third-party suite command callback) */
    char *suite_id;     /* SuiteId */
    char *auth_corp_id; /* AuthCorpId */
    char *info_type;    /* InfoType: takes the place of Event */
    int64_t time_stamp; /* TimeStamp: takes the place of CreateTime */
    char *change_type;  /* ChangeType */
    /* change_external_contact */
    char *user_id;          /* UserID: the member */
    char *external_user_id; /* ExternalUserID */
    char *state;            /* State: channel of the contact way */
    char *welcome_code;     /* WelcomeCode */
    char *source;           /* Source: DELETE_BY_TRANSFER */
    char *fail_reason;      /* FailReason: customer_refused / customer_limit_exceed */
    /* change_external_chat */
    char *chat_id;          /* ChatId */
    char *update_detail;    /* UpdateDetail: add_member, del_member, ... */
    int join_scene;         /* JoinScene */
    int quit_scene;         /* QuitScene */
    int mem_change_cnt;     /* MemChangeCnt */
    char **mem_change_list; /* MemChangeList/Item, NULL-terminated; NULL when absent */
    size_t mem_change_list_len;
    char *last_mem_ver; /* LastMemVer */
    char *cur_mem_ver;  /* CurMemVer */
    /* change_external_tag */
    char *id;          /* Id: tag or group id ("" for shuffle of all groups) */
    char *tag_type;    /* TagType: tag / tag_group */
    char *strategy_id; /* StrategyId, kept as text (bare or CDATA) */
    /* plain messages */
    char *msg_id;  /* MsgId, kept as text (64-bit) */
    char *content; /* Content */
    /* private: one arena holding every string above */
    char *arena_;
    size_t arena_len_;
} wecom_event;

/* Name of a kind: "add_external_contact", "chat_update", "tag_shuffle",
 * "unknown", ... Never NULL. */
const char *wecom_event_kind_name(wecom_event_kind kind);

/* Extract the <Encrypt> text (surrounding whitespace trimmed) of an outer POST
 * body. to_user (if not NULL and to_user_cap > 0) receives ToUserName or "".
 * On success *encrypt_out is malloc'd and NUL-terminated, freed by the caller.
 * Returns WECOM_E_PARSE_XML for malformed XML, a DOCTYPE, too deep nesting, a
 * missing or repeated Encrypt or a ToUserName longer than to_user_cap - 1;
 * WECOM_E_TOO_LARGE if len > WECOM_XML_MAX or Encrypt > WECOM_ENCRYPT_MAX;
 * WECOM_E_NOMEM. On failure *encrypt_out is NULL. */
int wecom_envelope_parse(const char *xml, size_t len, char **encrypt_out, size_t *encrypt_len_out,
                         char *to_user, size_t to_user_cap);

/* Parse a decrypted callback into ev. ev is output only: its previous content
 * is not freed (reset it first when reusing). Root must be <xml>; fields may be
 * CDATA or bare text; numbers may be CDATA and surrounding whitespace; unknown
 * elements are skipped. Returns WECOM_E_PARSE_XML with a message in errbuf
 * (naming the line/column or the field) for malformed XML, a DOCTYPE, nesting
 * deeper than WECOM_XML_DEPTH_MAX, a repeated field, a field over
 * WECOM_FIELD_MAX, more than WECOM_MEM_CHANGE_MAX items or a bad number;
 * WECOM_E_TOO_LARGE if len > WECOM_XML_MAX; WECOM_E_NOMEM. On failure ev is
 * left empty (as after wecom_event_reset). errbuf may be NULL. */
int wecom_event_parse(const char *xml, size_t len, wecom_event *ev, char *errbuf, size_t errcap);

/* Free what ev owns and leave it empty: pointers NULL, integers -1, kind
 * WECOM_EV_UNKNOWN. Safe on a zeroed struct and when called twice. */
void wecom_event_reset(wecom_event *ev);

/* Check internal consistency (strings inside the arena and NUL-terminated,
 * list length matches, kind matches Event/ChangeType). Returns true if valid;
 * otherwise false with *why (if not NULL) set to a static reason. For tests,
 * the fuzzer and debug builds. */
bool wecom_event_validate(const wecom_event *ev, const char **why);

#endif
