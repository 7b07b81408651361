/* test_wecom_event.c — outer envelope and decrypted event parsing.
 *
 * Event bodies are the official examples of the project WeCom spec §2 (docs
 * 96361/92277 and SDK mirrors) plus variants: numbers in CDATA, missing
 * fields, unknown events, hostile XML. Every successful parse is also checked
 * with wecom_event_validate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wecom/wecom_crypto.h"
#include "wecom/wecom_event.h"

#define V1_TOKEN "QDG6eK"
#define V1_KEY "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
#define V1_RID "wx5823bf96d3bd56c7"
#define V2_SIG "477715d11cdb4164915debcba66cb864d751f3e6"
#define V2_TS "1409659813"
#define V2_NONCE "1372623149"
#define V2_ENCRYPT                                                                                 \
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUp" \
    "j911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue" \
    "06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+" \
    "3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH" \
    "27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8" \
    "R07+qN+E7Q=="
#define V2_BODY                                                                                    \
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[" V2_ENCRYPT    \
    "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"

/* ---- helpers ----------------------------------------------------------- */

static char errbuf[256];

/* Parse s into ev, expecting success and a valid result. */
static void parse_ok(const char *s, wecom_event *ev) {
    int rc = wecom_event_parse(s, strlen(s), ev, errbuf, sizeof errbuf);
    if (rc != WECOM_OK) fail_msg("parse failed (%d): %s", rc, errbuf);
    const char *why = NULL;
    if (!wecom_event_validate(ev, &why)) fail_msg("invalid event: %s", why);
}

/* Parse s expecting failure with code rc and errbuf containing needle. */
static void parse_fail(const char *s, size_t len, int rc, const char *needle) {
    wecom_event ev;
    memset(&ev, 0x5a, sizeof ev); /* output-only: garbage in must be fine */
    assert_int_equal(wecom_event_parse(s, len, &ev, errbuf, sizeof errbuf), rc);
    if (needle && !strstr(errbuf, needle)) fail_msg("error '%s' lacks '%s'", errbuf, needle);
    /* Left empty. */
    assert_null(ev.to_user_name);
    assert_null(ev.mem_change_list);
    assert_int_equal(ev.create_time, -1);
    assert_int_equal(ev.kind, WECOM_EV_UNKNOWN);
    wecom_event_reset(&ev);
}

#define XML_HEAD(event)                                                                            \
    "<xml><ToUserName><![CDATA[CORPID]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>" \
    "<CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></"                              \
    "MsgType><Event><![CDATA[" event "]]></Event>"
#define CONTACT_HEAD XML_HEAD("change_external_contact")

/* ---- envelope ---------------------------------------------------------- */

static void test_envelope_v2(void **state) {
    (void)state;
    char *enc = NULL, to[64];
    size_t len = 0;
    assert_int_equal(wecom_envelope_parse(V2_BODY, strlen(V2_BODY), &enc, &len, to, sizeof to),
                     WECOM_OK);
    assert_string_equal(enc, V2_ENCRYPT);
    assert_int_equal(len, strlen(V2_ENCRYPT));
    assert_string_equal(to, V1_RID);
    free(enc);
    /* to_user is optional */
    assert_int_equal(wecom_envelope_parse(V2_BODY, strlen(V2_BODY), &enc, NULL, NULL, 0), WECOM_OK);
    free(enc);
}

static void test_envelope_layouts(void **state) {
    (void)state;
    char *enc = NULL, to[64];
    size_t len = 0;
    /* V4 style: newlines between elements. */
    const char *v4 = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n"
                     "<Encrypt><![CDATA[Kl7k+/==]]></Encrypt>\n"
                     "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>";
    assert_int_equal(wecom_envelope_parse(v4, strlen(v4), &enc, &len, to, sizeof to), WECOM_OK);
    assert_string_equal(enc, "Kl7k+/==");
    assert_string_equal(to, "ww1436e0e65a779aee");
    free(enc);
    /* Pretty-printed, bare text, XML declaration, Encrypt first, no ToUserName. */
    const char *pretty = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<xml>\r\n"
                         "  <Encrypt>\r\n    abc+/123=\r\n  </Encrypt>\r\n"
                         "  <Other><Encrypt>nested is ignored</Encrypt></Other>\r\n</xml>\r\n";
    assert_int_equal(wecom_envelope_parse(pretty, strlen(pretty), &enc, &len, to, sizeof to),
                     WECOM_OK);
    assert_string_equal(enc, "abc+/123=");
    assert_int_equal(len, 9);
    assert_string_equal(to, "");
    free(enc);
    /* Split CDATA sections are joined. */
    const char *split = "<xml><Encrypt><![CDATA[ab]]><![CDATA[cd]]></Encrypt></xml>";
    assert_int_equal(wecom_envelope_parse(split, strlen(split), &enc, &len, NULL, 0), WECOM_OK);
    assert_string_equal(enc, "abcd");
    free(enc);
}

static void test_envelope_errors(void **state) {
    (void)state;
    char *enc = (char *)"sentinel", to[8];
    const char *cases[] = {
        "<xml><ToUserName>x</ToUserName></xml>",               /* no Encrypt */
        "<xml><Encrypt></Encrypt></xml>",                      /* empty */
        "<xml><Encrypt> \n </Encrypt></xml>",                  /* only whitespace */
        "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>", /* twice */
        "<xml><Encrypt>abc</Encrypt>",                         /* unclosed */
        "<root><Encrypt>abc</Encrypt></root>",                 /* wrong root */
        "",                                                    /* empty body */
        "Encrypt=abc",                                         /* not XML */
        "<!DOCTYPE xml [<!ENTITY e \"abc\">]><xml><Encrypt>&e;</Encrypt></xml>",
        "<!DOCTYPE xml SYSTEM \"file:///etc/passwd\"><xml><Encrypt>a</Encrypt></xml>",
        "<xml><Encrypt>&e;</Encrypt></xml>", /* undefined entity */
        "<xml><ToUserName>toolong-corpid</ToUserName><Encrypt>a</Encrypt></xml>",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = wecom_envelope_parse(cases[i], strlen(cases[i]), &enc, NULL, to, sizeof to);
        if (rc != WECOM_E_PARSE_XML) fail_msg("case %zu: rc %d", i, rc);
        assert_null(enc);
        assert_string_equal(to, "");
    }
    /* Embedded NUL. */
    static const char nul[] = "<xml><Encrypt>a\0b</Encrypt></xml>";
    assert_int_equal(wecom_envelope_parse(nul, sizeof nul - 1, &enc, NULL, NULL, 0),
                     WECOM_E_PARSE_XML);
    assert_int_equal(wecom_envelope_parse(NULL, 0, &enc, NULL, NULL, 0), WECOM_E_PARSE_XML);
    assert_int_equal(wecom_envelope_parse("<xml/>", 6, NULL, NULL, NULL, 0), WECOM_E_INVALID_ARG);
}

static void test_envelope_limits(void **state) {
    (void)state;
    char *enc = NULL;
    size_t big = WECOM_ENCRYPT_MAX + 1;
    const char *pre = "<xml><Encrypt>", *post = "</Encrypt></xml>";
    char *body = malloc(big + 64);
    assert_non_null(body);
    /* Encrypt one byte over the cap. */
    size_t n = (size_t)sprintf(body, "%s", pre);
    memset(body + n, 'A', big);
    n += big;
    n += (size_t)sprintf(body + n, "%s", post);
    assert_int_equal(wecom_envelope_parse(body, n, &enc, NULL, NULL, 0), WECOM_E_TOO_LARGE);
    assert_null(enc);
    /* Exactly at the cap. */
    n = (size_t)sprintf(body, "%s", pre);
    memset(body + n, 'A', big - 1);
    n += big - 1;
    n += (size_t)sprintf(body + n, "%s", post);
    assert_int_equal(wecom_envelope_parse(body, n, &enc, NULL, NULL, 0), WECOM_OK);
    assert_int_equal(strlen(enc), WECOM_ENCRYPT_MAX);
    free(enc);
    free(body);
    /* Whole body over WECOM_XML_MAX: rejected before parsing. */
    assert_int_equal(wecom_envelope_parse("<xml/>", (size_t)WECOM_XML_MAX + 1, &enc, NULL, NULL, 0),
                     WECOM_E_TOO_LARGE);
}

/* Outer body -> verify -> decrypt -> event, as the HTTP handler does it. */
static void test_pipeline_v2(void **state) {
    (void)state;
    wecom_crypto c;
    wecom_event ev;
    char *enc = NULL, *msg = NULL, to[64];
    size_t enc_len = 0, msg_len = 0;
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, V1_RID), WECOM_OK);
    assert_int_equal(wecom_envelope_parse(V2_BODY, strlen(V2_BODY), &enc, &enc_len, to, sizeof to),
                     WECOM_OK);
    assert_int_equal(
        wecom_verify_decrypt(&c, V2_SIG, V2_TS, V2_NONCE, enc, enc_len, &msg, &msg_len), WECOM_OK);
    assert_int_equal(wecom_event_parse(msg, msg_len, &ev, errbuf, sizeof errbuf), WECOM_OK);
    assert_int_equal(ev.kind, WECOM_EV_UNKNOWN); /* a text message, not an event */
    assert_string_equal(ev.to_user_name, V1_RID);
    assert_string_equal(ev.from_user_name, "mycreate");
    assert_int_equal(ev.create_time, 1409659813);
    assert_string_equal(ev.msg_type, "text");
    assert_string_equal(ev.content, "hello");
    assert_string_equal(ev.msg_id, "4561255354251345929");
    assert_string_equal(ev.agent_id, "218");
    assert_null(ev.event);
    assert_null(ev.change_type);
    assert_int_equal(ev.join_scene, -1);
    wecom_event_reset(&ev);
    free(msg);
    free(enc);
}

/* Sender side and receiver side agree on a generated event. */
static void test_pipeline_build_roundtrip(void **state) {
    (void)state;
    wecom_crypto c;
    wecom_event ev;
    char *body = NULL, *enc = NULL, *msg = NULL, sig[41];
    size_t enc_len = 0, msg_len = 0;
    const char *plain = CONTACT_HEAD "<ChangeType>del_follow_user</ChangeType>"
                                     "<UserID>u1</UserID><ExternalUserID>e1</ExternalUserID></xml>";
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, V1_RID), WECOM_OK);
    assert_int_equal(
        wecom_callback_build(&c, "1700000000", "nonce1", NULL, plain, strlen(plain), &body, sig),
        WECOM_OK);
    assert_int_equal(wecom_envelope_parse(body, strlen(body), &enc, &enc_len, NULL, 0), WECOM_OK);
    assert_int_equal(
        wecom_verify_decrypt(&c, sig, "1700000000", "nonce1", enc, enc_len, &msg, &msg_len),
        WECOM_OK);
    parse_ok(msg, &ev);
    assert_int_equal(ev.kind, WECOM_EV_DEL_FOLLOW_USER);
    assert_string_equal(ev.external_user_id, "e1");
    wecom_event_reset(&ev);
    free(msg);
    free(enc);
    free(body);
}

/* ---- change_external_contact ------------------------------------------- */

static void test_add_external_contact_official(void **state) {
    (void)state;
    wecom_event ev;
    const char *xml =
        "<xml>\n"
        " <ToUserName><![CDATA[toUser]]></ToUserName>\n"
        " <FromUserName><![CDATA[sys]]></FromUserName>\n"
        " <CreateTime>1403610513</CreateTime>\n"
        " <MsgType><![CDATA[event]]></MsgType>\n"
        " <Event><![CDATA[change_external_contact]]></Event>\n"
        " <ChangeType><![CDATA[add_external_contact]]></ChangeType>\n"
        " <UserID><![CDATA[zhangsan]]></UserID>\n"
        " <ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]></ExternalUserID>\n"
        " <State><![CDATA[teststate]]></State>\n"
        " <WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>\n"
        "</xml>";
    parse_ok(xml, &ev);
    assert_int_equal(ev.kind, WECOM_EV_ADD_EXTERNAL_CONTACT);
    assert_string_equal(wecom_event_kind_name(ev.kind), "add_external_contact");
    assert_string_equal(ev.to_user_name, "toUser");
    assert_string_equal(ev.from_user_name, "sys");
    assert_int_equal(ev.create_time, 1403610513);
    assert_string_equal(ev.msg_type, "event");
    assert_string_equal(ev.event, "change_external_contact");
    assert_string_equal(ev.change_type, "add_external_contact");
    assert_string_equal(ev.user_id, "zhangsan");
    assert_string_equal(ev.external_user_id, "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA");
    assert_string_equal(ev.state, "teststate");
    assert_string_equal(ev.welcome_code, "WELCOMECODE");
    /* absent */
    assert_null(ev.source);
    assert_null(ev.fail_reason);
    assert_null(ev.chat_id);
    assert_null(ev.mem_change_list);
    assert_int_equal(ev.mem_change_list_len, 0);
    assert_int_equal(ev.join_scene, -1);
    assert_int_equal(ev.quit_scene, -1);
    assert_int_equal(ev.mem_change_cnt, -1);
    assert_int_equal(ev.time_stamp, -1);
    wecom_event_reset(&ev);
    wecom_event_reset(&ev); /* twice is fine */
}

static void test_contact_subtypes(void **state) {
    (void)state;
    wecom_event ev;

    parse_ok(CONTACT_HEAD
             "<ChangeType><![CDATA[add_half_external_contact]]></ChangeType>"
             "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ]]>"
             "</ExternalUserID><State><![CDATA[s1]]></State><WelcomeCode><![CDATA[W1]]>"
             "</WelcomeCode></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_ADD_HALF_EXTERNAL_CONTACT);
    assert_string_equal(ev.state, "s1");
    assert_string_equal(ev.welcome_code, "W1");
    wecom_event_reset(&ev);

    parse_ok(CONTACT_HEAD "<ChangeType><![CDATA[edit_external_contact]]></ChangeType>"
                          "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ]]>"
                          "</ExternalUserID></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_EDIT_EXTERNAL_CONTACT);
    assert_null(ev.state);
    wecom_event_reset(&ev);

    parse_ok(CONTACT_HEAD "<ChangeType><![CDATA[del_external_contact]]></ChangeType>"
                          "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ]]>"
                          "</ExternalUserID><Source><![CDATA[DELETE_BY_TRANSFER]]></Source></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_DEL_EXTERNAL_CONTACT);
    assert_string_equal(ev.source, "DELETE_BY_TRANSFER");
    wecom_event_reset(&ev);

    parse_ok(CONTACT_HEAD "<ChangeType><![CDATA[del_follow_user]]></ChangeType>"
                          "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ]]>"
                          "</ExternalUserID><State><![CDATA[seen-in-the-wild]]></State></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_DEL_FOLLOW_USER);
    assert_string_equal(ev.state, "seen-in-the-wild");
    wecom_event_reset(&ev);

    parse_ok(CONTACT_HEAD "<ChangeType><![CDATA[transfer_fail]]></ChangeType>"
                          "<FailReason><![CDATA[customer_refused]]></FailReason>"
                          "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ]]>"
                          "</ExternalUserID></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_TRANSFER_FAIL);
    assert_string_equal(ev.fail_reason, "customer_refused");
    wecom_event_reset(&ev);

    parse_ok(CONTACT_HEAD "<ChangeType><![CDATA[msg_audit_approved]]></ChangeType>"
                          "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ]]>"
                          "</ExternalUserID><WelcomeCode><![CDATA[WC]]></WelcomeCode></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_MSG_AUDIT_APPROVED);
    assert_string_equal(ev.welcome_code, "WC");
    wecom_event_reset(&ev);
}

/* ---- change_external_chat ---------------------------------------------- */

static void test_chat_update_official(void **state) {
    (void)state;
    wecom_event ev;
    const char *xml = "<xml>\n"
                      " <ToUserName><![CDATA[ww55ca070cb9b7eb22]]></ToUserName>\n"
                      " <FromUserName><![CDATA[sys]]></FromUserName>\n"
                      " <CreateTime>1403610513</CreateTime>\n"
                      " <MsgType><![CDATA[event]]></MsgType>\n"
                      " <Event><![CDATA[change_external_chat]]></Event>\n"
                      " <ChatId><![CDATA[wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ]]></ChatId>\n"
                      " <ChangeType><![CDATA[update]]></ChangeType>\n"
                      " <UpdateDetail><![CDATA[add_member]]></UpdateDetail>\n"
                      " <JoinScene>1</JoinScene>\n"
                      " <QuitScene>0</QuitScene>\n"
                      " <MemChangeCnt>10</MemChangeCnt>\n"
                      " <MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList>\n"
                      " <LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer>\n"
                      " <CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer>\n"
                      "</xml>";
    parse_ok(xml, &ev);
    assert_int_equal(ev.kind, WECOM_EV_CHAT_UPDATE);
    assert_string_equal(wecom_event_kind_name(ev.kind), "chat_update");
    assert_string_equal(ev.chat_id, "wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ");
    assert_string_equal(ev.update_detail, "add_member");
    assert_int_equal(ev.join_scene, 1);
    assert_int_equal(ev.quit_scene, 0);
    assert_int_equal(ev.mem_change_cnt, 10);
    assert_int_equal(ev.mem_change_list_len, 2);
    assert_string_equal(ev.mem_change_list[0], "Jack");
    assert_string_equal(ev.mem_change_list[1], "Rose");
    assert_null(ev.mem_change_list[2]);
    assert_string_equal(ev.last_mem_ver, "9c3f97c2ada667dfb5f6d03308d963e1");
    assert_string_equal(ev.cur_mem_ver, "71217227bbd112ecfe3a49c482195cb4");
    wecom_event_reset(&ev);
}

/* The captured change_name update: numbers and versions in CDATA, spaces. */
static void test_chat_update_cdata_numbers(void **state) {
    (void)state;
    wecom_event ev;
    parse_ok(
        XML_HEAD(
            "change_external_chat") "<ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId>"
                                    "<ChangeType><![CDATA[update]]></ChangeType>"
                                    "<UpdateDetail><![CDATA[change_name]]></UpdateDetail>"
                                    "<JoinScene><![CDATA[0]]></JoinScene><QuitScene> "
                                    "<![CDATA[1]]>\n</QuitScene>"
                                    "<MemChangeCnt><![CDATA[2]]></MemChangeCnt>"
                                    "<MemChangeList>\n  <Item><![CDATA[wmA]]></Item>\n  "
                                    "<Item>wmB</Item>\n"
                                    "  <Other>ignored</Other>\n</MemChangeList>"
                                    "<LastMemVer><![CDATA[aaa]]></"
                                    "LastMemVer><CurMemVer><![CDATA[bbb]]></CurMemVer></xml>",
        &ev);
    assert_int_equal(ev.kind, WECOM_EV_CHAT_UPDATE);
    assert_string_equal(ev.update_detail, "change_name");
    assert_int_equal(ev.join_scene, 0);
    assert_int_equal(ev.quit_scene, 1);
    assert_int_equal(ev.mem_change_cnt, 2);
    assert_int_equal(ev.mem_change_list_len, 2);
    assert_string_equal(ev.mem_change_list[0], "wmA");
    assert_string_equal(ev.mem_change_list[1], "wmB");
    assert_string_equal(ev.last_mem_ver, "aaa");
    wecom_event_reset(&ev);
    /* Empty list and empty numbers. */
    parse_ok(XML_HEAD("change_external_chat") "<ChangeType>update</ChangeType>"
                                              "<MemChangeList></MemChangeList><JoinScene></"
                                              "JoinScene><MemChangeCnt/></xml>",
             &ev);
    assert_non_null(ev.mem_change_list);
    assert_int_equal(ev.mem_change_list_len, 0);
    assert_null(ev.mem_change_list[0]);
    assert_int_equal(ev.join_scene, -1);
    assert_int_equal(ev.mem_change_cnt, -1);
    wecom_event_reset(&ev);
}

static void test_chat_create_dismiss(void **state) {
    (void)state;
    wecom_event ev;
    parse_ok(XML_HEAD("change_external_chat") "<ChatId><![CDATA[CHAT_ID]]></ChatId>"
                                              "<ChangeType><![CDATA[create]]></ChangeType></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_CHAT_CREATE);
    assert_string_equal(ev.chat_id, "CHAT_ID");
    assert_null(ev.update_detail);
    wecom_event_reset(&ev);
    parse_ok(XML_HEAD("change_external_chat") "<ChatId><![CDATA[CHAT_ID]]></ChatId>"
                                              "<ChangeType><![CDATA[dismiss]]></ChangeType></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_CHAT_DISMISS);
    assert_string_equal(wecom_event_kind_name(ev.kind), "chat_dismiss");
    wecom_event_reset(&ev);
}

static void test_member_list_limit(void **state) {
    (void)state;
    wecom_event ev;
    size_t cap = (WECOM_MEM_CHANGE_MAX + 1) * 32 + 512, n;
    char *xml = malloc(cap);
    assert_non_null(xml);
    for (int extra = 0; extra <= 1; extra++) {
        n = (size_t)sprintf(
            xml, XML_HEAD("change_external_chat") "<ChangeType>update</ChangeType><MemChangeList>");
        for (int i = 0; i < WECOM_MEM_CHANGE_MAX + extra; i++)
            n += (size_t)sprintf(xml + n, "<Item>wm%06d</Item>", i);
        n += (size_t)sprintf(xml + n, "</MemChangeList></xml>");
        if (!extra) {
            parse_ok(xml, &ev);
            assert_int_equal(ev.mem_change_list_len, WECOM_MEM_CHANGE_MAX);
            assert_string_equal(ev.mem_change_list[1999], "wm001999");
            wecom_event_reset(&ev);
        } else {
            parse_fail(xml, n, WECOM_E_PARSE_XML, "MemChangeList");
        }
    }
    free(xml);
}

/* ---- change_external_tag ----------------------------------------------- */

static void test_tag_events(void **state) {
    (void)state;
    wecom_event ev;
    parse_ok("<xml><ToUserName><![CDATA[CORPID]]></ToUserName><FromUserName><![CDATA[sys]]>"
             "</FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]>"
             "</MsgType><Event><![CDATA[change_external_tag]]></Event><Id><![CDATA[TAG_ID]]></Id>"
             "<TagType><![CDATA[tag]]></TagType><ChangeType><![CDATA[create]]></ChangeType>"
             "<StrategyId>1</StrategyId></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_TAG_CREATE);
    assert_string_equal(ev.id, "TAG_ID");
    assert_string_equal(ev.tag_type, "tag");
    assert_string_equal(ev.strategy_id, "1");
    wecom_event_reset(&ev);

    parse_ok(XML_HEAD("change_external_tag") "<Id><![CDATA[GROUP_ID]]></Id><TagType><![CDATA["
                                             "tag_group]]></TagType><ChangeType><![CDATA[update]]>"
                                             "</ChangeType></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_TAG_UPDATE);
    assert_string_equal(ev.tag_type, "tag_group");
    assert_null(ev.strategy_id);
    wecom_event_reset(&ev);

    parse_ok(
        XML_HEAD("change_external_tag") "<Id><![CDATA[TAG_ID]]></Id><TagType><![CDATA[tag]]>"
                                        "</TagType><ChangeType><![CDATA[delete]]></ChangeType>"
                                        "<StrategyId><![CDATA[STRATEGY_ID]]></StrategyId></xml>",
        &ev);
    assert_int_equal(ev.kind, WECOM_EV_TAG_DELETE);
    assert_string_equal(ev.strategy_id, "STRATEGY_ID");
    wecom_event_reset(&ev);

    /* shuffle: empty Id means every group; no TagType. */
    parse_ok(XML_HEAD("change_external_tag") "<Id><![CDATA[]]></Id><StrategyId><![CDATA["
                                             "STRATEGY_ID]]></StrategyId><ChangeType><![CDATA["
                                             "shuffle]]></ChangeType></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_TAG_SHUFFLE);
    assert_non_null(ev.id);
    assert_string_equal(ev.id, "");
    assert_null(ev.tag_type);
    assert_string_equal(ev.strategy_id, "STRATEGY_ID");
    wecom_event_reset(&ev);
}

/* ---- unknown and variant envelopes ------------------------------------- */

static void test_unknown_events(void **state) {
    (void)state;
    wecom_event ev;
    /* An event we do not model: stored, not rejected. */
    parse_ok(XML_HEAD("msgaudit_notify") "<AgentID>1000002</AgentID></xml>", &ev);
    assert_int_equal(ev.kind, WECOM_EV_UNKNOWN);
    assert_string_equal(ev.event, "msgaudit_notify");
    assert_string_equal(wecom_event_kind_name(ev.kind), "unknown");
    wecom_event_reset(&ev);
    /* Known Event, unknown ChangeType; new elements with children and attributes. */
    parse_ok(CONTACT_HEAD "<ChangeType>brand_new_thing</ChangeType>"
                          "<NewField a=\"1\"><Deep><Deeper>x</Deeper></Deep></NewField>"
                          "<UserID>u</UserID></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_UNKNOWN);
    assert_string_equal(ev.change_type, "brand_new_thing");
    assert_string_equal(ev.user_id, "u");
    wecom_event_reset(&ev);
    /* A tag ChangeType under the chat Event does not cross over. */
    parse_ok(XML_HEAD("change_external_chat") "<ChangeType>shuffle</ChangeType></xml>", &ev);
    assert_int_equal(ev.kind, WECOM_EV_UNKNOWN);
    wecom_event_reset(&ev);
    /* Minimal document. */
    parse_ok("<xml/>", &ev);
    assert_int_equal(ev.kind, WECOM_EV_UNKNOWN);
    assert_null(ev.to_user_name);
    assert_int_equal(ev.create_time, -1);
    wecom_event_reset(&ev);
}

static void test_suite_envelope(void **state) {
    (void)state;
    wecom_event ev;
    parse_ok("<xml><SuiteId><![CDATA[ww4asffe99e54c0f4c]]></SuiteId><AuthCorpId><![CDATA["
             "wxf8b4f85f3a794e77]]></AuthCorpId><InfoType><![CDATA[change_external_contact]]>"
             "</InfoType><TimeStamp>1403610513</TimeStamp><ChangeType><![CDATA["
             "add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>"
             "<ExternalUserID><![CDATA[woAJ]]></ExternalUserID><State><![CDATA[teststate]]>"
             "</State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>",
             &ev);
    assert_int_equal(ev.kind, WECOM_EV_ADD_EXTERNAL_CONTACT);
    assert_string_equal(ev.suite_id, "ww4asffe99e54c0f4c");
    assert_string_equal(ev.auth_corp_id, "wxf8b4f85f3a794e77");
    assert_string_equal(ev.info_type, "change_external_contact");
    assert_int_equal(ev.time_stamp, 1403610513);
    assert_int_equal(ev.create_time, -1);
    assert_null(ev.event);
    wecom_event_reset(&ev);
}

static void test_text_decoding(void **state) {
    (void)state;
    wecom_event ev;
    /* Entities, character references, CDATA holding markup, UTF-8. */
    parse_ok("<xml><Content>a &lt;b&gt; &amp; &#x4F60;&#22909; <![CDATA[<x>&amp;</x>]]> "
             "\xe4\xbd\xa0</Content><MsgId><![CDATA[ 123 ]]></MsgId></xml>",
             &ev);
    assert_string_equal(ev.content, "a <b> & \xe4\xbd\xa0\xe5\xa5\xbd <x>&amp;</x> \xe4\xbd\xa0");
    assert_string_equal(ev.msg_id, " 123 "); /* strings are kept verbatim */
    wecom_event_reset(&ev);
    /* A declared encoding does not switch away from UTF-8. */
    parse_ok("<?xml version=\"1.0\" encoding=\"UTF-8\"?><xml><UserID>u</UserID></xml>", &ev);
    assert_string_equal(ev.user_id, "u");
    wecom_event_reset(&ev);
}

/* ---- errors ------------------------------------------------------------ */

static void test_malformed_xml(void **state) {
    (void)state;
    const char *cases[] = {
        "",
        "not xml",
        "<xml>",
        "<xml><UserID>u</xml>",
        "<xml><UserID>u</UserId></xml>",
        "<xml></xml><xml></xml>",
        "<xml><UserID a=1>u</UserID></xml>",
        "<xml>&undefined;</xml>",
        "<xml><Content>\xff\xfe</Content></xml>",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_fail(cases[i], strlen(cases[i]), WECOM_E_PARSE_XML, "XML error at line");
    const char *unclosed = "<xml>\n<UserID>u\n</xml>";
    parse_fail(unclosed, strlen(unclosed), WECOM_E_PARSE_XML, "line 3");
    const char *root = "<root><UserID>u</UserID></root>";
    parse_fail(root, strlen(root), WECOM_E_PARSE_XML, "expected <xml>");
    static const char nul[] = "<xml><A>\0</A></xml>";
    parse_fail(nul, sizeof nul - 1, WECOM_E_PARSE_XML, "XML error");
    /* NULL errbuf is fine. */
    wecom_event ev;
    assert_int_equal(wecom_event_parse("<xml>", 5, &ev, NULL, 0), WECOM_E_PARSE_XML);
    assert_int_equal(wecom_event_parse("<xml/>", 6, NULL, NULL, 0), WECOM_E_INVALID_ARG);
}

static void test_doctype_rejected(void **state) {
    (void)state;
    const char *lol = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                      "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
                      "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
                      "<xml><Content>&lol3;</Content></xml>";
    parse_fail(lol, strlen(lol), WECOM_E_PARSE_XML, "DOCTYPE");
    const char *xxe = "<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
                      "<xml><Content>&xxe;</Content></xml>";
    parse_fail(xxe, strlen(xxe), WECOM_E_PARSE_XML, "DOCTYPE");
    const char *ext = "<!DOCTYPE xml SYSTEM \"http://example.invalid/x.dtd\"><xml/>";
    parse_fail(ext, strlen(ext), WECOM_E_PARSE_XML, "DOCTYPE");
    const char *pe = "<!DOCTYPE xml [<!ENTITY % p SYSTEM \"http://example.invalid/p\"> %p;]><xml/>";
    parse_fail(pe, strlen(pe), WECOM_E_PARSE_XML, "DOCTYPE");
}

static void test_field_limits(void **state) {
    (void)state;
    wecom_event ev;
    size_t cap = WECOM_FIELD_MAX + 256, n;
    char *xml = malloc(cap);
    assert_non_null(xml);
    /* Exactly WECOM_FIELD_MAX bytes is fine, one more names the field. */
    for (int extra = 0; extra <= 1; extra++) {
        n = (size_t)sprintf(xml, "<xml><UserID><![CDATA[");
        memset(xml + n, 'u', WECOM_FIELD_MAX + (size_t)extra);
        n += WECOM_FIELD_MAX + (size_t)extra;
        n += (size_t)sprintf(xml + n, "]]></UserID></xml>");
        if (!extra) {
            parse_ok(xml, &ev);
            assert_int_equal(strlen(ev.user_id), WECOM_FIELD_MAX);
            wecom_event_reset(&ev);
        } else {
            parse_fail(xml, n, WECOM_E_PARSE_XML, "UserID");
        }
    }
    /* Split across CDATA and bare text: the total counts. */
    n = (size_t)sprintf(xml, "<xml><MemChangeList><Item>");
    memset(xml + n, 'i', WECOM_FIELD_MAX - 10);
    n += WECOM_FIELD_MAX - 10;
    n += (size_t)sprintf(xml + n, "<![CDATA[0123456789X]]></Item></MemChangeList></xml>");
    parse_fail(xml, n, WECOM_E_PARSE_XML, "MemChangeList");
    free(xml);
    /* Whole document over WECOM_XML_MAX. */
    assert_int_equal(
        wecom_event_parse("<xml/>", (size_t)WECOM_XML_MAX + 1, &ev, errbuf, sizeof errbuf),
        WECOM_E_TOO_LARGE);
}

static void test_depth_limit(void **state) {
    (void)state;
    wecom_event ev;
    char xml[512];
    /* depth 8 (root + 7) parses, depth 9 does not */
    for (int depth = 8; depth <= 9; depth++) {
        size_t n = 0;
        n += (size_t)sprintf(xml + n, "<xml>");
        for (int i = 1; i < depth; i++)
            n += (size_t)sprintf(xml + n, "<d%d>", i);
        for (int i = depth - 1; i >= 1; i--)
            n += (size_t)sprintf(xml + n, "</d%d>", i);
        n += (size_t)sprintf(xml + n, "</xml>");
        if (depth == 8) {
            parse_ok(xml, &ev);
            wecom_event_reset(&ev);
        } else {
            parse_fail(xml, n, WECOM_E_PARSE_XML, "deeper");
        }
    }
}

static void test_bad_numbers_and_duplicates(void **state) {
    (void)state;
    const char *cases[][2] = {
        {"<xml><CreateTime>abc</CreateTime></xml>", "CreateTime"},
        {"<xml><CreateTime>-5</CreateTime></xml>", "CreateTime"},
        {"<xml><CreateTime>1 2</CreateTime></xml>", "CreateTime"},
        {"<xml><CreateTime>99999999999999999999</CreateTime></xml>", "CreateTime"},
        {"<xml><JoinScene>2147483648</JoinScene></xml>", "JoinScene"},
        {"<xml><MemChangeCnt>0x10</MemChangeCnt></xml>", "MemChangeCnt"},
        {"<xml><TimeStamp>1.5</TimeStamp></xml>", "TimeStamp"},
        {"<xml><UserID>a</UserID><UserID>b</UserID></xml>", "UserID"},
        {"<xml><MemChangeList/><MemChangeList/></xml>", "MemChangeList"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_fail(cases[i][0], strlen(cases[i][0]), WECOM_E_PARSE_XML, cases[i][1]);
    /* Limits themselves are fine. */
    wecom_event ev;
    parse_ok("<xml><CreateTime>9223372036854775807</CreateTime><JoinScene>2147483647</JoinScene>"
             "</xml>",
             &ev);
    assert_true(ev.create_time == INT64_MAX);
    assert_int_equal(ev.join_scene, 2147483647);
    wecom_event_reset(&ev);
}

static void test_reset_and_validate(void **state) {
    (void)state;
    wecom_event ev;
    memset(&ev, 0, sizeof ev);
    wecom_event_reset(&ev);
    wecom_event_reset(&ev);
    assert_int_equal(ev.join_scene, -1);
    assert_true(wecom_event_validate(&ev, NULL));
    wecom_event_reset(NULL);

    const char *why = NULL;
    parse_ok(XML_HEAD("change_external_chat") "<ChangeType>update</ChangeType>"
                                              "<MemChangeList><Item>a</Item></MemChangeList></xml>",
             &ev);
    ev.kind = WECOM_EV_TAG_CREATE;
    assert_false(wecom_event_validate(&ev, &why));
    assert_non_null(why);
    ev.kind = WECOM_EV_CHAT_UPDATE;
    char outside[] = "x";
    char *saved = ev.user_id;
    ev.user_id = outside;
    assert_false(wecom_event_validate(&ev, &why));
    ev.user_id = saved;
    ev.mem_change_list_len = WECOM_MEM_CHANGE_MAX + 1; /* checked before any read */
    assert_false(wecom_event_validate(&ev, &why));
    ev.mem_change_list_len = 1;
    assert_true(wecom_event_validate(&ev, &why));
    assert_null(why);
    wecom_event_reset(&ev);
    assert_false(wecom_event_validate(NULL, &why));
}

static void test_kind_names(void **state) {
    (void)state;
    for (int i = 0; i < WECOM_EV_KIND_COUNT; i++) {
        const char *a = wecom_event_kind_name((wecom_event_kind)i);
        assert_non_null(a);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(a, wecom_event_kind_name((wecom_event_kind)j));
    }
    assert_string_equal(wecom_event_kind_name(WECOM_EV_TAG_SHUFFLE), "tag_shuffle");
    assert_string_equal(wecom_event_kind_name(WECOM_EV_KIND_COUNT), "unknown");
    assert_string_equal(wecom_event_kind_name((wecom_event_kind)-1), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_v2),
        cmocka_unit_test(test_envelope_layouts),
        cmocka_unit_test(test_envelope_errors),
        cmocka_unit_test(test_envelope_limits),
        cmocka_unit_test(test_pipeline_v2),
        cmocka_unit_test(test_pipeline_build_roundtrip),
        cmocka_unit_test(test_add_external_contact_official),
        cmocka_unit_test(test_contact_subtypes),
        cmocka_unit_test(test_chat_update_official),
        cmocka_unit_test(test_chat_update_cdata_numbers),
        cmocka_unit_test(test_chat_create_dismiss),
        cmocka_unit_test(test_member_list_limit),
        cmocka_unit_test(test_tag_events),
        cmocka_unit_test(test_unknown_events),
        cmocka_unit_test(test_suite_envelope),
        cmocka_unit_test(test_text_decoding),
        cmocka_unit_test(test_malformed_xml),
        cmocka_unit_test(test_doctype_rejected),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_bad_numbers_and_duplicates),
        cmocka_unit_test(test_reset_and_validate),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
