/* fuzz_callback.c — libFuzzer target for the WeCom callback path.
 *
 * The first input byte picks a mode (byte % 4), the rest is the payload:
 *   0  outer POST body: wecom_envelope_parse -> sign the Encrypt text with the
 *      V1 token/timestamp/nonce (so the signature check passes and decryption
 *      is reached) -> wecom_verify_decrypt with the V1 key -> wecom_event_parse
 *   1  decrypted event XML straight into wecom_event_parse
 *   2  plaintext round trip: wecom_callback_build -> envelope -> verify ->
 *      decrypt must give the payload back byte for byte
 *   3  raw plaintext layout (zero-filled to a multiple of 16) through
 *      wecom__encrypt_raw -> wecom_decrypt, reaching every pad/length check;
 *      plus Base64 decode/encode of the payload
 * Every successful event parse is checked with wecom_event_validate; any
 * broken invariant aborts. Seeds: fuzz/corpus/callback/.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc
 *   fuzz/fuzz_callback.c src/wecom/wecom_crypto.c src/wecom/wecom_event.c -lcrypto -lexpat */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wecom/wecom_crypto.h"
#include "wecom/wecom_event.h"

#define V1_TOKEN "QDG6eK"
#define V1_KEY "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
#define V1_RID "wx5823bf96d3bd56c7"
#define V1_TS "1409659813"
#define V1_NONCE "1372623149"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void parse_event(const char *xml, size_t len) {
    wecom_event ev;
    char err[160];
    const char *why = NULL;
    int rc = wecom_event_parse(xml, len, &ev, err, sizeof err);
    if (rc == WECOM_OK) {
        if (!wecom_event_validate(&ev, &why)) {
            fprintf(stderr, "invalid event: %s\n", why);
            abort();
        }
        CHECK(wecom_event_kind_name(ev.kind) != NULL);
    } else {
        CHECK(rc == WECOM_E_PARSE_XML || rc == WECOM_E_TOO_LARGE || rc == WECOM_E_NOMEM);
        CHECK(err[0] != '\0');
        CHECK(ev.arena_ == NULL && ev.mem_change_list == NULL);
    }
    wecom_event_reset(&ev);
}

static void mode_envelope(const wecom_crypto *c, const char *body, size_t len) {
    char *enc = NULL, *msg = NULL, to[64], sig[41];
    size_t enc_len = 0, msg_len = 0;
    if (wecom_envelope_parse(body, len, &enc, &enc_len, to, sizeof to) != WECOM_OK) return;
    CHECK(enc && strlen(enc) == enc_len && enc_len <= WECOM_ENCRYPT_MAX);
    CHECK(wecom_signature(V1_TOKEN, V1_TS, V1_NONCE, enc, enc_len, sig) == WECOM_OK);
    int rc = wecom_verify_decrypt(c, sig, V1_TS, V1_NONCE, enc, enc_len, &msg, &msg_len);
    if (rc == WECOM_OK) {
        CHECK(msg && msg[msg_len] == '\0');
        parse_event(msg, msg_len);
    } else {
        CHECK(msg == NULL && rc != WECOM_E_SIGNATURE);
    }
    free(msg);
    free(enc);
}

static void mode_roundtrip(const wecom_crypto *c, const char *msg, size_t len) {
    char *body = NULL, *enc = NULL, *back = NULL, sig[41];
    size_t enc_len = 0, back_len = 0;
    static const uint8_t random16[16] = "0123456789abcdef";
    CHECK(wecom_callback_build(c, V1_TS, V1_NONCE, len & 1 ? random16 : NULL, msg, len, &body,
                               sig) == WECOM_OK);
    CHECK(wecom_envelope_parse(body, strlen(body), &enc, &enc_len, NULL, 0) == WECOM_OK);
    CHECK(wecom_verify_decrypt(c, sig, V1_TS, V1_NONCE, enc, enc_len, &back, &back_len) ==
          WECOM_OK);
    CHECK(back_len == len && memcmp(back, msg, len) == 0 && back[len] == '\0');
    free(back);
    free(enc);
    free(body);
}

static void mode_raw(const wecom_crypto *c, const uint8_t *p, size_t len) {
    /* Base64 decode, then re-encode and decode again: same bytes. */
    size_t cap = len / 4 * 3, n = 0, n2 = 0;
    uint8_t *dec = malloc(cap + 1), *dec2 = malloc(cap + 1);
    char *enc = malloc(len + 8);
    CHECK(dec && dec2 && enc);
    if (wecom_base64_decode((const char *)p, len, dec, cap, &n) == WECOM_OK) {
        CHECK(n <= cap);
        CHECK(wecom_base64_encode(dec, n, enc, len + 8) == WECOM_OK);
        CHECK(strlen(enc) == len);
        CHECK(wecom_base64_decode(enc, len, dec2, cap, &n2) == WECOM_OK);
        CHECK(n2 == n && (n == 0 || memcmp(dec, dec2, n) == 0));
    }
    free(enc);
    free(dec2);
    free(dec);

    /* The payload as a plaintext layout. */
    size_t padded = (len + 15) / 16 * 16;
    if (padded == 0 || padded > 64 * 1024) return;
    uint8_t *plain = calloc(1, padded);
    char *b64 = NULL, *msg = NULL;
    size_t msg_len = 0;
    CHECK(plain);
    memcpy(plain, p, len);
    CHECK(wecom__encrypt_raw(c, plain, padded, &b64) == WECOM_OK);
    int rc = wecom_decrypt(c, b64, strlen(b64), &msg, &msg_len);
    if (rc == WECOM_OK) {
        /* Re-derive the layout by hand and compare. */
        size_t pad = plain[padded - 1];
        CHECK(pad >= 1 && pad <= 32 && padded - pad >= 20);
        CHECK(msg_len == ((size_t)plain[16] << 24 | (size_t)plain[17] << 16 |
                          (size_t)plain[18] << 8 | plain[19]));
        CHECK(20 + msg_len + strlen(V1_RID) == padded - pad);
        CHECK(memcmp(msg, plain + 20, msg_len) == 0 && msg[msg_len] == '\0');
        parse_event(msg, msg_len);
    } else {
        CHECK(msg == NULL);
        CHECK(rc == WECOM_E_ILLEGAL_BUFFER || rc == WECOM_E_RECEIVEID);
    }
    free(msg);
    free(b64);
    free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wecom_crypto c;
    if (size < 1) return 0;
    if (wecom_crypto_init(&c, V1_TOKEN, V1_KEY, V1_RID) != WECOM_OK) abort();
    const char *payload = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0:
        mode_envelope(&c, payload, len);
        break;
    case 1:
        parse_event(payload, len);
        break;
    case 2:
        if (len <= WECOM_MSG_MAX) mode_roundtrip(&c, payload, len);
        break;
    default:
        mode_raw(&c, data + 1, len);
        break;
    }
    wecom_crypto_reset(&c);
    return 0;
}
