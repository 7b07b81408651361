/* test_wecom_crypto.c — WXBizMsgCrypt vectors and edge cases.
 *
 * V1-V4 are the official sample vectors, G1-G3 generated regression vectors
 * (project WeCom spec §1.10). Malformed buffers are built with
 * wecom__encrypt_raw so every decrypt bounds check is reached with a
 * ciphertext that is otherwise valid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wecom/wecom_crypto.h"

/* ---- vectors ----------------------------------------------------------- */

#define V1_TOKEN "QDG6eK"
#define V1_KEY "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
#define V1_KEY_HEX "8d69989bbaabe67328014c194631ad0719b3dca035b64023df292447aab60760"
#define V1_RID "wx5823bf96d3bd56c7"
#define V1_SIG "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
#define V1_TS "1409659589"
#define V1_NONCE "263014780"
#define V1_ECHOSTR                                                                                 \
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
#define V1_REPLY "1616140317555161061"

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
#define V2_PLAIN                                                                                   \
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"                               \
    "<FromUserName><![CDATA[mycreate]]></FromUserName>\n"                                          \
    "<CreateTime>1409659813</CreateTime>\n"                                                        \
    "<MsgType><![CDATA[text]]></MsgType>\n"                                                        \
    "<Content><![CDATA[hello]]></Content>\n"                                                       \
    "<MsgId>4561255354251345929</MsgId>\n"                                                         \
    "<AgentID>218</AgentID>\n"                                                                     \
    "</xml>"

#define V3_TOKEN "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
#define V3_KEY "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
#define V3_KEY_HEX "eaa91d32babaf274ca76ece72583b5037ed6da8120a64314be4b6d453a2a854b"
#define V3_RID "ww1436e0e65a779aee"
#define V3_SIG "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
#define V3_TS "1476416373"
#define V3_NONCE "47744683"
#define V3_ECHOSTR                                                                                 \
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
#define V3_REPLY "1288432023552776189"

#define V4_SIG "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
#define V4_TS "1476422779"
#define V4_NONCE "1597212914"
#define V4_ENCRYPT                                                                                 \
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGz" \
    "BhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3J" \
    "WcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQH" \
    "E7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYu" \
    "PDGOCI8jmnKiypE+"
/* Content is U+4F60 U+597D ("ni hao") in UTF-8. */
#define V4_PLAIN                                                                                   \
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"     \
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType>"                                   \
    "<Content>\xe4\xbd\xa0\xe5\xa5\xbd</Content><MsgId>1456453720</MsgId>"                         \
    "<AgentID>1000002</AgentID></xml>"

#define G_RANDOM "0123456789abcdef"

#define G1_TS "1403610513"
#define G1_NONCE "1372623149"
#define G1_PLAIN                                                                                   \
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[sys]]>"    \
    "</FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>"       \
    "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact"  \
    "]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtW"  \
    "yujaWJHDDGi0mAAAA]]></ExternalUserID><State><![CDATA[teststate]]></State><WelcomeCode><![CD"  \
    "ATA[WELCOMECODE]]></WelcomeCode></xml>"
#define G1_ENCRYPT                                                                                 \
    "sKqRbbiSUnDhFHOvPjtUMQt4o93Z7RIw5jBB62MqEINhKaM9eMS5BYRP3YqfaOp4WaT0GPBltRR0d6Brb8l/KpYiGIMp" \
    "zeVwh+7K8G46kDK+dHgPEuZ/WJz1/DSInCiNv9YJuEZkqHZ8otPbIbb+X354iMCha+E0HGKTBV43XPdgzLDDEtp/tLni" \
    "VIEChMkf4/Z5U+kwLTmeCzV+3KX1Vkh+nkOJkz4F8ya2xO48rXJb/8q+UYaEfjW6gkEdJPHqFgMpORb3G6ZE2h969yBU" \
    "EWH9Jkfzv2RfhqRWKKp1VBmyqtcKYGH+hfnnkAH8YLmD0rUYWYneBOjj3ez+/AxJSXpoJtIZKI9uB49li0eMeeaMiHp5" \
    "hU374kqZ4hmY2LY1fsABN8blebydEzcNqtuz/OP6uFDFTApAGlW2taIJHNDKPt2bhSq2DLcpSoAL13AgJt07jev2Ey9B" \
    "Tn8I/PyGYpJfUHmI3DosV1jHwI1JdERiN/t0BdwnMb/+0hxPYfCRvRIUEeoRsxa9wXxYYLFZvjI1RFcaLkQED48oEn+y" \
    "obJDBlrLTwsXht18ZWekVYQoSfe+jCK02P5JhCX1fXl/QN09YFV/CLBTCCNQ17JRyYU16IJxyA4p88sdeuG8gVtJI0kM" \
    "q+ohHigYa3+61xTFBLlWI65NYRtTq1rssCDAt9Wzgdpa5ude/EG9NL/SLTiG65h10MiE2HmC3oTfyM8FJA=="
#define G1_SIG "4fbbd9a0dee6641dc73dfd65fa4def5a6d5b2972"

#define G2_TS "1409659813"
#define G2_NONCE "1372623149"
#define G2_PLAIN                                                                                   \
    "<xml><ToUserName><![CDATA[mycreate]]></ToUserName><FromUserName><![CDATA[wx5823bf96d3bd56c7"  \
    "]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Co"  \
    "ntent><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId><AgentID>128</Agen"  \
    "tID></xml>"
#define G2_ENCRYPT                                                                                 \
    "sKqRbbiSUnDhFHOvPjtUMdc23JsNXVqHAPPZdO0pIWIMYDThPIeGEfKX2v40MaN9wqY6jfiEfXjU91lWT29R5DJekiGh" \
    "+kvvWbgJb/xv+e4E7ohGxVjHMNbvtW/W79/IDuKgVJBfBuHgGc9otUO0w1l7Hsae/Ln6/jSCx2GMGlPTrk/Pd9Du8oTb" \
    "3PrIs9a90wxwbaI9txmYwPqRSx+UWHWpEqcaMDQrfWyNOrIC1LMxfJN98WVM1lo7rHKcEzvuCkg0KtnJTML2WgkG7/ev" \
    "V+9gUXmIvHuAUwYvYhHEQjwQc8mFWnT1QCHyMMAaTYTs9YkB/njRL+wc5wMGWfU13eiwnl5qqIiQ7mvzi8TevQtz+Svc" \
    "7SLFfrDfOWKuQmQOeAl9qFb+6QvXPBwEA1jAHo2cjnyeAPiQSi0YuLrvv4GqcDtRnbUKYlOP6sETKok0mOls1Z87pkjk" \
    "onVbXJWABw=="
#define G2_SIG "d9cdf134dbf5386e31896eb2a79c68dbe53e8cc2"

/* ---- helpers ----------------------------------------------------------- */

static void init_v1(wecom_crypto *c) {
    assert_int_equal(wecom_crypto_init(c, V1_TOKEN, V1_KEY, V1_RID), WECOM_OK);
}

static void init_v3(wecom_crypto *c) {
    assert_int_equal(wecom_crypto_init(c, V3_TOKEN, V3_KEY, V3_RID), WECOM_OK);
}

static void assert_key_hex(const wecom_crypto *c, const char *hex) {
    char got[65];
    for (int i = 0; i < 32; i++)
        snprintf(got + 2 * i, 3, "%02x", c->key[i]);
    assert_string_equal(got, hex);
}

/* Decoded ciphertext length of a Base64 string. */
static size_t b64_bytes(const char *b64) {
    size_t len = strlen(b64), out_len = 0;
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    assert_non_null(buf);
    assert_int_equal(wecom_base64_decode(b64, len, buf, len / 4 * 3, &out_len), WECOM_OK);
    free(buf);
    return out_len;
}

/* Lay out random16 | be32 msg_len | msg | rid | pad copies of pad_byte into
 * buf (the pad count and the pad byte may disagree on purpose). Returns the
 * total length. */
static size_t layout(uint8_t *buf, uint32_t msg_len_field, const char *msg, size_t msg_len,
                     const char *rid, size_t pad_count, uint8_t pad_byte) {
    size_t n = 0;
    memcpy(buf, G_RANDOM, 16);
    n = 16;
    buf[n++] = (uint8_t)(msg_len_field >> 24);
    buf[n++] = (uint8_t)(msg_len_field >> 16);
    buf[n++] = (uint8_t)(msg_len_field >> 8);
    buf[n++] = (uint8_t)msg_len_field;
    memcpy(buf + n, msg, msg_len);
    n += msg_len;
    memcpy(buf + n, rid, strlen(rid));
    n += strlen(rid);
    memset(buf + n, pad_byte, pad_count);
    return n + pad_count;
}

/* Encrypt a raw layout with the V1 key and decrypt it; returns the code. */
static int decrypt_raw(const uint8_t *plain, size_t len, char **msg, size_t *msg_len) {
    wecom_crypto c;
    char *b64 = NULL;
    init_v1(&c);
    assert_int_equal(wecom__encrypt_raw(&c, plain, len, &b64), WECOM_OK);
    int rc = wecom_decrypt(&c, b64, strlen(b64), msg, msg_len);
    free(b64);
    return rc;
}

/* ---- key derivation ---------------------------------------------------- */

static void test_key_derivation(void **state) {
    (void)state;
    wecom_crypto c;
    init_v1(&c);
    assert_key_hex(&c, V1_KEY_HEX);
    assert_string_equal(c.token, V1_TOKEN);
    assert_int_equal(c.token_len, 6);
    assert_string_equal(c.receiveid, V1_RID);
    assert_int_equal(c.receiveid_len, 18);
    init_v3(&c);
    assert_key_hex(&c, V3_KEY_HEX);
    wecom_crypto_reset(&c);
    for (size_t i = 0; i < sizeof c.key; i++)
        assert_int_equal(c.key[i], 0);
    wecom_crypto_reset(&c);
}

/* The last char carries 4 key bits and 2 unused bits: all four variants that
 * differ only in the unused bits must give the same key (V1 ends in 'C'). */
static void test_key_noncanonical_endings(void **state) {
    (void)state;
    const char *endings = "ABCD";
    for (int i = 0; i < 4; i++) {
        char key[44];
        wecom_crypto c;
        memcpy(key, V1_KEY, 44);
        key[42] = endings[i];
        assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, key, V1_RID), WECOM_OK);
        assert_key_hex(&c, V1_KEY_HEX);
    }
    /* 'E' changes a key bit: a different key. */
    char key[44];
    wecom_crypto c;
    memcpy(key, V1_KEY, 44);
    key[42] = 'E';
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, key, V1_RID), WECOM_OK);
    assert_int_not_equal(c.key[31], 0x60);
    /* V3's key ends in 't' (non-zero unused bits) and was checked above. */
}

static void test_key_bad(void **state) {
    (void)state;
    wecom_crypto c;
    char key[64];
    /* length 42 and 44 */
    assert_int_equal(
        wecom_crypto_init(&c, V1_TOKEN, "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2", V1_RID),
        WECOM_E_ILLEGAL_AES_KEY);
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY "A", V1_RID), WECOM_E_ILLEGAL_AES_KEY);
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY "=", V1_RID), WECOM_E_ILLEGAL_AES_KEY);
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, "", V1_RID), WECOM_E_ILLEGAL_AES_KEY);
    /* alphabet: '+', '/', '=', '-', '_', space, high byte in any position */
    const char bad[] = {'+', '/', '=', '-', '_', ' ', (char)0xc3};
    for (size_t b = 0; b < sizeof bad; b++)
        for (size_t pos = 0; pos < 43; pos += 21) {
            memcpy(key, V1_KEY, 44);
            key[pos] = bad[b];
            assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, key, V1_RID), WECOM_E_ILLEGAL_AES_KEY);
            for (size_t i = 0; i < sizeof c.key; i++)
                assert_int_equal(c.key[i], 0);
        }
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, NULL, V1_RID), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom_crypto_init(NULL, V1_TOKEN, V1_KEY, V1_RID), WECOM_E_INVALID_ARG);
}

static void test_config_bounds(void **state) {
    (void)state;
    wecom_crypto c;
    char big[WECOM_TOKEN_MAX + 2];
    memset(big, 'a', sizeof big);
    big[WECOM_TOKEN_MAX] = '\0'; /* exactly the limit */
    assert_int_equal(wecom_crypto_init(&c, big, V1_KEY, V1_RID), WECOM_OK);
    big[WECOM_TOKEN_MAX] = 'a';
    big[WECOM_TOKEN_MAX + 1] = '\0';
    assert_int_equal(wecom_crypto_init(&c, big, V1_KEY, V1_RID), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom_crypto_init(&c, "", V1_KEY, V1_RID), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom_crypto_init(&c, "tok\nen", V1_KEY, V1_RID), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, big), WECOM_E_INVALID_ARG);
    big[WECOM_RECEIVEID_MAX] = '\0';
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, big), WECOM_OK);
    assert_int_equal(c.receiveid_len, WECOM_RECEIVEID_MAX);
    /* Empty receiveid is legal (personal-subject third-party apps). */
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, ""), WECOM_OK);
    assert_int_equal(c.receiveid_len, 0);
}

/* ---- official vectors -------------------------------------------------- */

static void test_signature_worked_example(void **state) {
    (void)state;
    char sig[41];
    assert_int_equal(
        wecom_signature(V1_TOKEN, V2_TS, V2_NONCE, V2_ENCRYPT, strlen(V2_ENCRYPT), sig), WECOM_OK);
    assert_string_equal(sig, V2_SIG);
    /* Order of the arguments does not matter to the sorted concatenation. */
    assert_int_equal(
        wecom_signature(V2_NONCE, V2_TS, V1_TOKEN, V2_ENCRYPT, strlen(V2_ENCRYPT), sig), WECOM_OK);
    assert_string_equal(sig, V2_SIG);
    assert_int_equal(wecom_signature(NULL, V2_TS, V2_NONCE, "", 0, sig), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom_signature(V1_TOKEN, V2_TS, V2_NONCE, NULL, 0, sig), WECOM_OK);
}

static void test_v1_get_echostr(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = NULL;
    size_t len = 0;
    init_v1(&c);
    assert_int_equal(wecom_verify_decrypt(&c, V1_SIG, V1_TS, V1_NONCE, V1_ECHOSTR,
                                          strlen(V1_ECHOSTR), &msg, &len),
                     WECOM_OK);
    assert_int_equal(len, strlen(V1_REPLY));
    assert_string_equal(msg, V1_REPLY);
    free(msg);
    assert_int_equal(b64_bytes(V1_ECHOSTR), 64);
}

static void test_v2_post(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = NULL;
    size_t len = 0;
    init_v1(&c);
    assert_int_equal(wecom_verify_decrypt(&c, V2_SIG, V2_TS, V2_NONCE, V2_ENCRYPT,
                                          strlen(V2_ENCRYPT), &msg, &len),
                     WECOM_OK);
    assert_int_equal(len, 284);
    assert_string_equal(msg, V2_PLAIN);
    free(msg);
    assert_int_equal(b64_bytes(V2_ENCRYPT), 352);
}

static void test_v3_get_echostr(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = NULL;
    size_t len = 0;
    init_v3(&c);
    assert_int_equal(wecom_verify_decrypt(&c, V3_SIG, V3_TS, V3_NONCE, V3_ECHOSTR,
                                          strlen(V3_ECHOSTR), &msg, &len),
                     WECOM_OK);
    assert_string_equal(msg, V3_REPLY);
    assert_int_equal(len, strlen(V3_REPLY));
    free(msg);
}

static void test_v4_post(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = NULL;
    size_t len = 0;
    init_v3(&c);
    assert_int_equal(wecom_verify_decrypt(&c, V4_SIG, V4_TS, V4_NONCE, V4_ENCRYPT,
                                          strlen(V4_ENCRYPT), &msg, &len),
                     WECOM_OK);
    assert_int_equal(len, 228);
    assert_string_equal(msg, V4_PLAIN);
    free(msg);
    assert_int_equal(b64_bytes(V4_ENCRYPT), 288);
}

/* ---- generated vectors ------------------------------------------------- */

static void check_generated(const char *ts, const char *nonce, const char *plain,
                            const char *want_enc, const char *want_sig) {
    wecom_crypto c;
    char *enc = NULL, *body = NULL, *msg = NULL;
    char sig[41];
    init_v1(&c);
    assert_int_equal(wecom_encrypt(&c, (const uint8_t *)G_RANDOM, plain, strlen(plain), &enc),
                     WECOM_OK);
    assert_string_equal(enc, want_enc);
    assert_int_equal(wecom_signature(V1_TOKEN, ts, nonce, enc, strlen(enc), sig), WECOM_OK);
    assert_string_equal(sig, want_sig);

    assert_int_equal(wecom_callback_build(&c, ts, nonce, (const uint8_t *)G_RANDOM, plain,
                                          strlen(plain), &body, sig),
                     WECOM_OK);
    assert_string_equal(sig, want_sig);
    char want_body[2048];
    snprintf(want_body, sizeof want_body,
             "<xml><ToUserName><![CDATA[" V1_RID "]]></ToUserName><Encrypt><![CDATA[%s]]>"
             "</Encrypt><AgentID><![CDATA[]]></AgentID></xml>",
             want_enc);
    assert_string_equal(body, want_body);

    assert_int_equal(wecom_verify_decrypt(&c, sig, ts, nonce, enc, strlen(enc), &msg, NULL),
                     WECOM_OK);
    assert_string_equal(msg, plain);
    free(msg);
    free(body);
    free(enc);
}

static void test_g1_event_encrypt(void **state) {
    (void)state;
    assert_int_equal(strlen(G1_PLAIN), 486);
    check_generated(G1_TS, G1_NONCE, G1_PLAIN, G1_ENCRYPT, G1_SIG);
    assert_int_equal(b64_bytes(G1_ENCRYPT), 544);
}

static void test_g2_reply_encrypt(void **state) {
    (void)state;
    assert_int_equal(strlen(G2_PLAIN), 283);
    check_generated(G2_TS, G2_NONCE, G2_PLAIN, G2_ENCRYPT, G2_SIG);
}

/* G3: 16 + 4 + 58 + 18 = 96 bytes, so a whole 32-byte pad block: 128 bytes. */
static void test_g3_full_pad_block(void **state) {
    (void)state;
    wecom_crypto c;
    char msg58[59], *enc = NULL, *out = NULL;
    size_t out_len = 0;
    memset(msg58, 'x', 58);
    msg58[58] = '\0';
    init_v1(&c);
    assert_int_equal(wecom_encrypt(&c, NULL, msg58, 58, &enc), WECOM_OK);
    assert_int_equal(b64_bytes(enc), 128);
    assert_int_equal(wecom_decrypt(&c, enc, strlen(enc), &out, &out_len), WECOM_OK);
    assert_int_equal(out_len, 58);
    assert_memory_equal(out, msg58, 59);
    free(out);
    free(enc);
    /* One byte less: pad 1, 96 bytes. */
    assert_int_equal(wecom_encrypt(&c, NULL, msg58, 57, &enc), WECOM_OK);
    assert_int_equal(b64_bytes(enc), 96);
    free(enc);
}

static void test_roundtrip_random_prefix(void **state) {
    (void)state;
    wecom_crypto c;
    char *a = NULL, *b = NULL, *out = NULL;
    size_t out_len = 0;
    static const char bin[] = "a\0b\xff\n<xml/>";
    init_v1(&c);
    assert_int_equal(wecom_encrypt(&c, NULL, bin, sizeof bin, &a), WECOM_OK);
    assert_int_equal(wecom_encrypt(&c, NULL, bin, sizeof bin, &b), WECOM_OK);
    assert_string_not_equal(a, b); /* fresh random prefix each time */
    assert_int_equal(wecom_decrypt(&c, b, strlen(b), &out, &out_len), WECOM_OK);
    assert_int_equal(out_len, sizeof bin);
    assert_memory_equal(out, bin, sizeof bin);
    assert_int_equal(out[out_len], '\0');
    free(out);
    free(a);
    free(b);
    /* Every message length across two pad blocks, and the empty message. */
    for (size_t n = 0; n <= 70; n++) {
        char msg[71];
        memset(msg, 'm', n);
        assert_int_equal(wecom_encrypt(&c, NULL, msg, n, &a), WECOM_OK);
        assert_int_equal(b64_bytes(a) % 32, 0);
        assert_int_equal(wecom_decrypt(&c, a, strlen(a), &out, &out_len), WECOM_OK);
        assert_int_equal(out_len, n);
        assert_memory_equal(out, msg, n);
        free(out);
        free(a);
    }
    /* Empty receiveid. */
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, ""), WECOM_OK);
    assert_int_equal(wecom_encrypt(&c, NULL, "hi", 2, &a), WECOM_OK);
    assert_int_equal(wecom_decrypt(&c, a, strlen(a), &out, &out_len), WECOM_OK);
    assert_string_equal(out, "hi");
    free(out);
    free(a);
}

/* ---- negative cases ---------------------------------------------------- */

static void test_signature_mismatch(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = (char *)"sentinel";
    char sig[41];
    init_v1(&c);
    for (int pos = 0; pos < 40; pos += 13) {
        memcpy(sig, V2_SIG, 41);
        sig[pos] = sig[pos] == '0' ? '1' : '0';
        assert_int_equal(wecom_verify_decrypt(&c, sig, V2_TS, V2_NONCE, V2_ENCRYPT,
                                              strlen(V2_ENCRYPT), &msg, NULL),
                         WECOM_E_SIGNATURE);
        assert_null(msg);
    }
    assert_int_equal(
        wecom_signature_verify(V1_TOKEN, V2_SIG, V2_TS, V2_NONCE, V2_ENCRYPT, strlen(V2_ENCRYPT)),
        WECOM_OK);
    /* wrong length, uppercase, other timestamp, NULL */
    assert_int_equal(wecom_signature_verify(V1_TOKEN, "477715d11cdb4164915debcba66cb864d751f3e",
                                            V2_TS, V2_NONCE, V2_ENCRYPT, strlen(V2_ENCRYPT)),
                     WECOM_E_SIGNATURE);
    assert_int_equal(wecom_signature_verify(V1_TOKEN, V2_SIG "0", V2_TS, V2_NONCE, V2_ENCRYPT,
                                            strlen(V2_ENCRYPT)),
                     WECOM_E_SIGNATURE);
    assert_int_equal(wecom_signature_verify(V1_TOKEN, "477715D11CDB4164915DEBCBA66CB864D751F3E6",
                                            V2_TS, V2_NONCE, V2_ENCRYPT, strlen(V2_ENCRYPT)),
                     WECOM_E_SIGNATURE);
    assert_int_equal(wecom_signature_verify(V1_TOKEN, V2_SIG, "1409659814", V2_NONCE, V2_ENCRYPT,
                                            strlen(V2_ENCRYPT)),
                     WECOM_E_SIGNATURE);
    assert_int_equal(
        wecom_signature_verify(V1_TOKEN, "", V2_TS, V2_NONCE, V2_ENCRYPT, strlen(V2_ENCRYPT)),
        WECOM_E_SIGNATURE);
    assert_int_equal(
        wecom_signature_verify(V1_TOKEN, NULL, V2_TS, V2_NONCE, V2_ENCRYPT, strlen(V2_ENCRYPT)),
        WECOM_E_INVALID_ARG);
    /* Another token. */
    assert_int_equal(
        wecom_signature_verify("QDG6eL", V2_SIG, V2_TS, V2_NONCE, V2_ENCRYPT, strlen(V2_ENCRYPT)),
        WECOM_E_SIGNATURE);
}

static void test_wrong_receiveid(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = (char *)"sentinel";
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, "wx5823bf96d3bd56c8"), WECOM_OK);
    assert_int_equal(wecom_decrypt(&c, V2_ENCRYPT, strlen(V2_ENCRYPT), &msg, NULL),
                     WECOM_E_RECEIVEID);
    assert_null(msg);
    /* a prefix and an extension of the real one */
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, "wx5823bf96d3bd56c"), WECOM_OK);
    assert_int_equal(wecom_decrypt(&c, V2_ENCRYPT, strlen(V2_ENCRYPT), &msg, NULL),
                     WECOM_E_RECEIVEID);
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, V1_RID "7"), WECOM_OK);
    assert_int_equal(wecom_decrypt(&c, V2_ENCRYPT, strlen(V2_ENCRYPT), &msg, NULL),
                     WECOM_E_RECEIVEID);
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, ""), WECOM_OK);
    assert_int_equal(wecom_decrypt(&c, V2_ENCRYPT, strlen(V2_ENCRYPT), &msg, NULL),
                     WECOM_E_RECEIVEID);
}

/* A key other than the sender's decrypts to garbage: never a success. */
static void test_wrong_key(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = NULL;
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V3_KEY, V1_RID), WECOM_OK);
    int rc = wecom_decrypt(&c, V2_ENCRYPT, strlen(V2_ENCRYPT), &msg, NULL);
    assert_true(rc == WECOM_E_ILLEGAL_BUFFER || rc == WECOM_E_RECEIVEID);
    assert_null(msg);
}

static void test_truncated_base64(void **state) {
    (void)state;
    wecom_crypto c;
    char *msg = (char *)"sentinel";
    size_t len = strlen(V2_ENCRYPT);
    init_v1(&c);
    /* Not a multiple of 4: Base64 error. */
    for (size_t cut = 1; cut <= 3; cut++)
        assert_int_equal(wecom_decrypt(&c, V2_ENCRYPT, len - cut, &msg, NULL),
                         WECOM_E_DECODE_BASE64);
    /* A whole quad dropped: 351 bytes, not a multiple of 16. */
    assert_int_equal(wecom_decrypt(&c, V2_ENCRYPT, len - 4, &msg, NULL), WECOM_E_DECRYPT_AES);
    /* Cut to 64 chars = 48 bytes (three AES blocks): AES succeeds, but the
     * last byte is message text, so the pad or length check fails. */
    int rc = wecom_decrypt(&c, V2_ENCRYPT, 64, &msg, NULL);
    assert_true(rc == WECOM_E_ILLEGAL_BUFFER || rc == WECOM_E_RECEIVEID);
    assert_null(msg);
    assert_int_equal(wecom_decrypt(&c, "", 0, &msg, NULL), WECOM_E_DECRYPT_AES);
    assert_int_equal(wecom_decrypt(&c, "AAAA", 4, &msg, NULL), WECOM_E_DECRYPT_AES);
    /* Bad characters: whitespace, URL-safe alphabet, '=' inside. */
    char bad[sizeof V2_ENCRYPT];
    const char repl[] = {' ', '\n', '-', '_', '=', '%'};
    for (size_t i = 0; i < sizeof repl; i++) {
        memcpy(bad, V2_ENCRYPT, sizeof bad);
        bad[100] = repl[i];
        assert_int_equal(wecom_decrypt(&c, bad, len, &msg, NULL), WECOM_E_DECODE_BASE64);
    }
    assert_null(msg);
}

static void test_bad_pad(void **state) {
    (void)state;
    uint8_t buf[256];
    char *msg = (char *)"sentinel";
    size_t n;
    /* Sanity: a correct layout built by hand decrypts (16+4+6+18 = 44, pad 20). */
    n = layout(buf, 6, "hello!", 6, V1_RID, 20, 20);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_OK);
    assert_string_equal(msg, "hello!");
    free(msg);
    /* pad byte 0 and 33 */
    n = layout(buf, 6, "hello!", 6, V1_RID, 20, 0);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_ILLEGAL_BUFFER);
    assert_null(msg);
    n = layout(buf, 6, "hello!", 6, V1_RID, 20, 33);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_ILLEGAL_BUFFER);
    n = layout(buf, 6, "hello!", 6, V1_RID, 20, 255);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_ILLEGAL_BUFFER);
    /* pad 32 that eats into the header: 32-byte buffer, nothing left. */
    memset(buf, 32, 32);
    assert_int_equal(decrypt_raw(buf, 32, &msg, NULL), WECOM_E_ILLEGAL_BUFFER);
    /* pad claims more than it is: removes part of the receiveid. */
    n = layout(buf, 6, "hello!", 6, V1_RID, 20, 21);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_RECEIVEID);
    /* Only the last pad byte is read (like the official libraries). */
    n = layout(buf, 6, "hello!", 6, V1_RID, 20, 20);
    buf[n - 2] = 7;
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_OK);
    free(msg);
    /* A multiple of 16 but not 32 is accepted when the layout is right. */
    n = layout(buf, 9, "123456789", 9, V1_RID, 1, 1);
    assert_int_equal(n, 48);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_OK);
    assert_string_equal(msg, "123456789");
    free(msg);
}

static void test_msg_len_out_of_bounds(void **state) {
    (void)state;
    uint8_t buf[256];
    char *msg = (char *)"sentinel";
    size_t n;
    n = layout(buf, 0xffffffffu, "hello!", 6, V1_RID, 20, 20);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_ILLEGAL_BUFFER);
    assert_null(msg);
    n = layout(buf, 0x80000000u, "hello!", 6, V1_RID, 20, 20);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_ILLEGAL_BUFFER);
    /* One past the end of the unpadded data: 6 + 18 + 1. */
    n = layout(buf, 25, "hello!", 6, V1_RID, 20, 20);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_ILLEGAL_BUFFER);
    /* Exactly to the end: the receiveid is empty, so it mismatches. */
    n = layout(buf, 24, "hello!", 6, V1_RID, 20, 20);
    assert_int_equal(decrypt_raw(buf, n, &msg, NULL), WECOM_E_RECEIVEID);
}

static void test_size_limits(void **state) {
    (void)state;
    wecom_crypto c;
    char *out = (char *)"sentinel";
    size_t big = WECOM_ENCRYPT_MAX + 4;
    char *b64 = malloc(big + 1);
    assert_non_null(b64);
    memset(b64, 'A', big);
    b64[big] = '\0';
    init_v1(&c);
    assert_int_equal(wecom_decrypt(&c, b64, big, &out, NULL), WECOM_E_TOO_LARGE);
    assert_null(out);
    assert_int_equal(wecom_verify_decrypt(&c, V2_SIG, V2_TS, V2_NONCE, b64, big, &out, NULL),
                     WECOM_E_TOO_LARGE);
    /* The largest accepted message round-trips and stays under the input cap. */
    char *msg = malloc(WECOM_MSG_MAX);
    assert_non_null(msg);
    memset(msg, '<', WECOM_MSG_MAX);
    assert_int_equal(wecom_encrypt(&c, NULL, msg, WECOM_MSG_MAX + 1, &out), WECOM_E_TOO_LARGE);
    assert_null(out);
    assert_int_equal(wecom_encrypt(&c, NULL, msg, WECOM_MSG_MAX, &out), WECOM_OK);
    assert_true(strlen(out) <= WECOM_ENCRYPT_MAX);
    char *back = NULL;
    size_t back_len = 0;
    assert_int_equal(wecom_decrypt(&c, out, strlen(out), &back, &back_len), WECOM_OK);
    assert_int_equal(back_len, WECOM_MSG_MAX);
    assert_memory_equal(back, msg, WECOM_MSG_MAX);
    free(back);
    free(out);
    free(msg);
    free(b64);
}

static void test_raw_helper_args(void **state) {
    (void)state;
    wecom_crypto c;
    uint8_t buf[32] = {0};
    char *out = (char *)"sentinel";
    init_v1(&c);
    assert_int_equal(wecom__encrypt_raw(&c, buf, 0, &out), WECOM_E_INVALID_ARG);
    assert_null(out);
    assert_int_equal(wecom__encrypt_raw(&c, buf, 17, &out), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom__encrypt_raw(&c, buf, 16, &out), WECOM_OK);
    assert_int_equal(strlen(out), 24);
    free(out);
    assert_int_equal(wecom_decrypt(NULL, "", 0, &out, NULL), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom_decrypt(&c, "AAAA", 4, NULL, NULL), WECOM_E_INVALID_ARG);
    assert_int_equal(wecom_encrypt(&c, NULL, NULL, 1, &out), WECOM_E_INVALID_ARG);
}

static void test_callback_build_cdata_guard(void **state) {
    (void)state;
    wecom_crypto c;
    char *body = (char *)"sentinel";
    char sig[41] = "x";
    assert_int_equal(wecom_crypto_init(&c, V1_TOKEN, V1_KEY, "ww]]>x"), WECOM_OK);
    assert_int_equal(wecom_callback_build(&c, "1", "2", NULL, "m", 1, &body, sig),
                     WECOM_E_GEN_RETURN_XML);
    assert_null(body);
    assert_string_equal(sig, "");
    init_v1(&c);
    assert_int_equal(wecom_callback_build(&c, NULL, "2", NULL, "m", 1, &body, sig),
                     WECOM_E_INVALID_ARG);
    assert_null(body);
}

/* ---- Base64 ------------------------------------------------------------ */

static void test_base64(void **state) {
    (void)state;
    uint8_t in[64], out[64];
    char enc[100];
    size_t out_len;
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        assert_int_equal(wecom_base64_encode(in, n, enc, sizeof enc), WECOM_OK);
        assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
        assert_int_equal(wecom_base64_decode(enc, strlen(enc), out, sizeof out, &out_len),
                         WECOM_OK);
        assert_int_equal(out_len, n);
        assert_memory_equal(out, in, n);
    }
    assert_int_equal(wecom_base64_encode((const uint8_t *)"foobar", 6, enc, sizeof enc), WECOM_OK);
    assert_string_equal(enc, "Zm9vYmFy");
    assert_int_equal(wecom_base64_encode((const uint8_t *)"fo", 2, enc, sizeof enc), WECOM_OK);
    assert_string_equal(enc, "Zm8=");
    assert_int_equal(wecom_base64_encode((const uint8_t *)"fo", 2, enc, 4), WECOM_E_ENCODE_BASE64);
    /* Lenient trailing bits: "Zm9=" and "Zm8=" both decode to "fo". */
    assert_int_equal(wecom_base64_decode("Zm9=", 4, out, sizeof out, &out_len), WECOM_OK);
    assert_int_equal(out_len, 2);
    assert_memory_equal(out, "fo", 2);
    const char *bad[] = {"Z",    "Zm9",  "Zm9vY",    "=Zm8", "Z=m8", "Zm=8",
                         "Z===", "====", "Zm8=Zm8=", "Zm8 ", "Zm-_"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(wecom_base64_decode(bad[i], strlen(bad[i]), out, sizeof out, &out_len),
                         WECOM_E_DECODE_BASE64);
    /* Output too small. */
    assert_int_equal(wecom_base64_decode("Zm9vYmFy", 8, out, 5, &out_len), WECOM_E_DECODE_BASE64);
    assert_int_equal(wecom_base64_decode("", 0, out, 0, &out_len), WECOM_OK);
    assert_int_equal(out_len, 0);
}

static void test_strerror(void **state) {
    (void)state;
    assert_non_null(strstr(wecom_crypto_strerror(WECOM_E_SIGNATURE), "ValidateSignature"));
    assert_non_null(strstr(wecom_crypto_strerror(WECOM_E_DECODE_BASE64), "DecodeBase64"));
    assert_non_null(strstr(wecom_crypto_strerror(WECOM_E_ILLEGAL_AES_KEY), "IllegalAesKey"));
    assert_string_equal(wecom_crypto_strerror(WECOM_OK), "OK");
    assert_string_equal(wecom_crypto_strerror(-1), "unknown error");
    for (int code = -40011; code <= -40001; code++)
        assert_string_not_equal(wecom_crypto_strerror(code), "unknown error");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_derivation),
        cmocka_unit_test(test_key_noncanonical_endings),
        cmocka_unit_test(test_key_bad),
        cmocka_unit_test(test_config_bounds),
        cmocka_unit_test(test_signature_worked_example),
        cmocka_unit_test(test_v1_get_echostr),
        cmocka_unit_test(test_v2_post),
        cmocka_unit_test(test_v3_get_echostr),
        cmocka_unit_test(test_v4_post),
        cmocka_unit_test(test_g1_event_encrypt),
        cmocka_unit_test(test_g2_reply_encrypt),
        cmocka_unit_test(test_g3_full_pad_block),
        cmocka_unit_test(test_roundtrip_random_prefix),
        cmocka_unit_test(test_signature_mismatch),
        cmocka_unit_test(test_wrong_receiveid),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_truncated_base64),
        cmocka_unit_test(test_bad_pad),
        cmocka_unit_test(test_msg_len_out_of_bounds),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_raw_helper_args),
        cmocka_unit_test(test_callback_build_cdata_guard),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
