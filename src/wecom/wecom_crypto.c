/* wecom_crypto.c — WXBizMsgCrypt: signature, AES-256-CBC payload, Base64.
 *
 * Role: everything between the raw callback strings (query params, <Encrypt>
 * text) and the plaintext event XML, in both directions. XML is not parsed here
 * (wecom_event.c does that); only the fixed outer POST body is printed.
 *
 * Plaintext layout (before padding; the cipher never sees library padding):
 *
 *     0        16         20             20+msg_len           n        n+pad
 *     | random | msg_len  | msg ...      | receiveid ...      | pad*pad |
 *                be32                                         pad in 1..32
 *
 * Invariants checked on decrypt, in order, each with its own code: Base64 is
 * well formed (-40010); ciphertext length is a non-zero multiple of 16 (-40007);
 * the last byte `pad` is 1..32 and leaves at least 20 bytes (-40008);
 * 20 + msg_len <= n (-40008); the tail equals the configured receiveid (-40005).
 * Only the last pad byte is read, like the official libraries: the signature,
 * not the padding, is what authenticates the message.
 *
 * Ownership: wecom_crypto is caller-owned and never modified after init. Every
 * returned buffer is malloc'd and handed to the caller. Intermediate plaintext
 * is wiped with OPENSSL_cleanse before it is freed. No globals. */
#include "wecom/wecom_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANDOM_LEN 16
#define HEADER_LEN 20 /* random + be32 msg_len */
#define PAD_BLOCK 32

const char *wecom_crypto_strerror(int code) {
    switch (code) {
    case WECOM_OK:
        return "OK";
    case WECOM_E_SIGNATURE:
        return "ValidateSignature_Error: signature mismatch";
    case WECOM_E_PARSE_XML:
        return "ParseXml_Error: bad XML or no Encrypt";
    case WECOM_E_COMPUTE_SIGNATURE:
        return "ComputeSignature_Error: SHA-1 failed";
    case WECOM_E_ILLEGAL_AES_KEY:
        return "IllegalAesKey: EncodingAESKey is not 43 [A-Za-z0-9]";
    case WECOM_E_RECEIVEID:
        return "ValidateCorpid_Error: receiveid mismatch";
    case WECOM_E_ENCRYPT_AES:
        return "EncryptAES_Error: AES encrypt failed";
    case WECOM_E_DECRYPT_AES:
        return "DecryptAES_Error: AES decrypt failed";
    case WECOM_E_ILLEGAL_BUFFER:
        return "IllegalBuffer: malformed decrypted buffer";
    case WECOM_E_ENCODE_BASE64:
        return "EncodeBase64_Error: Base64 encode failed";
    case WECOM_E_DECODE_BASE64:
        return "DecodeBase64_Error: Base64 decode failed";
    case WECOM_E_GEN_RETURN_XML:
        return "GenReturnXml_Error: building XML failed";
    case WECOM_E_INVALID_ARG:
        return "InvalidArgument: bad argument or configuration";
    case WECOM_E_TOO_LARGE:
        return "TooLarge: input exceeds limit";
    case WECOM_E_NOMEM:
        return "NoMemory: allocation failed";
    }
    return "unknown error";
}

/* ---- Base64 ------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a Base64 char, -1 if not in the standard alphabet. */
static int b64_value(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

static size_t b64_encoded_len(size_t n) {
    return (n + 2) / 3 * 4;
}

int wecom_base64_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap) {
    if (!out || (!in && in_len) || in_len > (SIZE_MAX - 3) / 4 * 3 ||
        out_cap < b64_encoded_len(in_len) + 1)
        return WECOM_E_ENCODE_BASE64;
    size_t o = 0, i = 0;
    for (; i + 3 <= in_len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (in_len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (in_len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return WECOM_OK;
}

int wecom_base64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                        size_t *out_len) {
    if (out_len) *out_len = 0;
    if ((!in && in_len) || in_len % 4 != 0) return WECOM_E_DECODE_BASE64;
    size_t npad = 0;
    if (in_len >= 4 && in[in_len - 1] == '=') npad = in[in_len - 2] == '=' ? 2 : 1;
    size_t n = in_len / 4 * 3 - npad;
    if (n > out_cap || (!out && n)) return WECOM_E_DECODE_BASE64;
    size_t o = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        bool last = i + 4 == in_len;
        size_t nchars = last ? 4 - npad : 4; /* significant chars in this quad */
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = 0;
            if (k < nchars) {
                d = b64_value((unsigned char)in[i + k]);
                if (d < 0) return WECOM_E_DECODE_BASE64; /* also rejects inner '=' */
            }
            v = v << 6 | (uint32_t)d;
        }
        /* Bytes covered by nchars chars: 4 -> 3, 3 -> 2, 2 -> 1. Leftover low
         * bits of the last char are dropped, not checked (see §1.2). */
        out[o++] = (uint8_t)(v >> 16);
        if (nchars >= 3) out[o++] = (uint8_t)(v >> 8);
        if (nchars == 4) out[o++] = (uint8_t)v;
    }
    if (out_len) *out_len = o;
    return WECOM_OK;
}

/* ---- configuration ----------------------------------------------------- */

static bool is_key_char(unsigned char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* Copy a printable-ASCII string of at most max bytes; false if it does not fit. */
static bool copy_printable(char *dst, size_t *dst_len, const char *src, size_t max) {
    size_t n = strnlen(src, max + 1);
    if (n > max) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch < 0x20 || ch > 0x7e) return false;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    *dst_len = n;
    return true;
}

int wecom_crypto_init(wecom_crypto *c, const char *token, const char *encoding_aes_key,
                      const char *receiveid) {
    char padded[WECOM_ENCODING_AES_KEY_LEN + 1];
    size_t key_len = 0;
    int rc = WECOM_E_INVALID_ARG;

    if (!c) return WECOM_E_INVALID_ARG;
    memset(c, 0, sizeof *c);
    if (!token || !encoding_aes_key || !receiveid) goto done;

    rc = WECOM_E_ILLEGAL_AES_KEY;
    if (strnlen(encoding_aes_key, WECOM_ENCODING_AES_KEY_LEN + 1) != WECOM_ENCODING_AES_KEY_LEN)
        goto done;
    for (size_t i = 0; i < WECOM_ENCODING_AES_KEY_LEN; i++)
        if (!is_key_char((unsigned char)encoding_aes_key[i])) goto done;
    memcpy(padded, encoding_aes_key, WECOM_ENCODING_AES_KEY_LEN);
    padded[WECOM_ENCODING_AES_KEY_LEN] = '=';
    if (wecom_base64_decode(padded, sizeof padded, c->key, sizeof c->key, &key_len) != 0 ||
        key_len != WECOM_AES_KEY_LEN)
        goto done;

    rc = WECOM_E_INVALID_ARG;
    if (!copy_printable(c->token, &c->token_len, token, WECOM_TOKEN_MAX) || c->token_len == 0)
        goto done;
    if (!copy_printable(c->receiveid, &c->receiveid_len, receiveid, WECOM_RECEIVEID_MAX)) goto done;
    rc = WECOM_OK;
done:
    OPENSSL_cleanse(padded, sizeof padded);
    if (rc != WECOM_OK) wecom_crypto_reset(c);
    return rc;
}

void wecom_crypto_reset(wecom_crypto *c) {
    if (c) OPENSSL_cleanse(c, sizeof *c);
}

/* ---- signature --------------------------------------------------------- */

typedef struct span {
    const char *p;
    size_t n;
} span;

/* Byte-wise lexicographic order; a proper prefix sorts first (= strcmp for
 * NUL-free strings, = Python str order for UTF-8). */
static int span_cmp(const span *a, const span *b) {
    size_t n = a->n < b->n ? a->n : b->n;
    int r = n ? memcmp(a->p, b->p, n) : 0;
    if (r) return r;
    return (a->n > b->n) - (a->n < b->n);
}

int wecom_signature(const char *token, const char *timestamp, const char *nonce,
                    const char *encrypt, size_t encrypt_len, char out_hex[41]) {
    static const char hex[] = "0123456789abcdef";
    span s[4];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = NULL;
    int rc = WECOM_E_INVALID_ARG;

    if (!out_hex) return WECOM_E_INVALID_ARG;
    out_hex[0] = '\0';
    if (!token || !timestamp || !nonce || (!encrypt && encrypt_len)) goto done;
    s[0] = (span){token, strlen(token)};
    s[1] = (span){timestamp, strlen(timestamp)};
    s[2] = (span){nonce, strlen(nonce)};
    s[3] = (span){encrypt ? encrypt : "", encrypt_len};
    for (int i = 1; i < 4; i++) /* insertion sort of four */
        for (int j = i; j > 0 && span_cmp(&s[j - 1], &s[j]) > 0; j--) {
            span t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }

    rc = WECOM_E_COMPUTE_SIGNATURE;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1) goto done;
    for (int i = 0; i < 4; i++)
        if (s[i].n && EVP_DigestUpdate(ctx, s[i].p, s[i].n) != 1) goto done;
    if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 20) goto done;
    for (unsigned i = 0; i < 20; i++) {
        out_hex[2 * i] = hex[md[i] >> 4];
        out_hex[2 * i + 1] = hex[md[i] & 15];
    }
    out_hex[40] = '\0';
    rc = WECOM_OK;
done:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int wecom_signature_verify(const char *token, const char *msg_signature, const char *timestamp,
                           const char *nonce, const char *encrypt, size_t encrypt_len) {
    char want[41];
    if (!msg_signature) return WECOM_E_INVALID_ARG;
    int rc = wecom_signature(token, timestamp, nonce, encrypt, encrypt_len, want);
    if (rc) return rc;
    /* The length is public; only the digest comparison must be constant-time. */
    if (strnlen(msg_signature, 41) != 40) return WECOM_E_SIGNATURE;
    return CRYPTO_memcmp(want, msg_signature, 40) == 0 ? WECOM_OK : WECOM_E_SIGNATURE;
}

/* ---- AES --------------------------------------------------------------- */

/* AES-256-CBC over len bytes (a multiple of 16) with IV = key[0..16) and no
 * library padding. enc: 1 encrypt, 0 decrypt. Returns 0 or -1. */
static int aes_cbc(const uint8_t key[WECOM_AES_KEY_LEN], int enc, const uint8_t *in, size_t len,
                   uint8_t *out) {
    EVP_CIPHER_CTX *ctx = NULL;
    int outl = 0, finl = 0, rc = -1;

    if (len == 0 || len % 16 != 0 || len > (size_t)(1 << 30)) goto done;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, key, enc) != 1) goto done;
    if (EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) goto done;
    if (EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1) goto done;
    if (EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1) goto done;
    if ((size_t)outl + (size_t)finl != len) goto done;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

static uint32_t be32_read(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_write(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int wecom_decrypt(const wecom_crypto *c, const char *b64, size_t b64_len, char **msg_out,
                  size_t *msg_len_out) {
    uint8_t *cipher = NULL, *plain = NULL;
    size_t clen = 0;
    int rc;

    if (msg_out) *msg_out = NULL;
    if (msg_len_out) *msg_len_out = 0;
    if (!c || !msg_out || (!b64 && b64_len)) return WECOM_E_INVALID_ARG;
    if (b64_len > WECOM_ENCRYPT_MAX) return WECOM_E_TOO_LARGE;

    size_t cap = b64_len / 4 * 3;
    rc = WECOM_E_NOMEM;
    cipher = malloc(cap ? cap : 1);
    plain = malloc(cap ? cap : 1);
    if (!cipher || !plain) goto done;
    rc = wecom_base64_decode(b64, b64_len, cipher, cap, &clen);
    if (rc) goto done;

    rc = WECOM_E_DECRYPT_AES;
    if (clen == 0 || clen % 16 != 0) goto done;
    if (aes_cbc(c->key, 0, cipher, clen, plain) != 0) goto done;

    rc = WECOM_E_ILLEGAL_BUFFER;
    size_t pad = plain[clen - 1];
    if (pad < 1 || pad > PAD_BLOCK || pad > clen || clen - pad < HEADER_LEN) goto done;
    size_t n = clen - pad; /* unpadded length */
    size_t msg_len = be32_read(plain + RANDOM_LEN);
    if (msg_len > n - HEADER_LEN) goto done;

    rc = WECOM_E_RECEIVEID;
    const uint8_t *rid = plain + HEADER_LEN + msg_len;
    size_t rid_len = n - HEADER_LEN - msg_len;
    if (rid_len != c->receiveid_len || (rid_len && memcmp(rid, c->receiveid, rid_len) != 0))
        goto done;

    rc = WECOM_E_NOMEM;
    char *msg = malloc(msg_len + 1);
    if (!msg) goto done;
    memcpy(msg, plain + HEADER_LEN, msg_len);
    msg[msg_len] = '\0';
    *msg_out = msg;
    if (msg_len_out) *msg_len_out = msg_len;
    rc = WECOM_OK;
done:
    if (plain) OPENSSL_cleanse(plain, cap ? cap : 1);
    free(plain);
    free(cipher);
    return rc;
}

int wecom__encrypt_raw(const wecom_crypto *c, const uint8_t *plain, size_t len, char **b64_out) {
    uint8_t *cipher = NULL;
    char *out = NULL;
    int rc = WECOM_E_INVALID_ARG;

    if (b64_out) *b64_out = NULL;
    if (!c || !plain || !b64_out || len == 0 || len % 16 != 0) goto done;
    rc = WECOM_E_TOO_LARGE;
    if (b64_encoded_len(len) > WECOM_ENCRYPT_MAX) goto done;

    rc = WECOM_E_NOMEM;
    cipher = malloc(len);
    out = malloc(b64_encoded_len(len) + 1);
    if (!cipher || !out) goto done;
    rc = WECOM_E_ENCRYPT_AES;
    if (aes_cbc(c->key, 1, plain, len, cipher) != 0) goto done;
    rc = wecom_base64_encode(cipher, len, out, b64_encoded_len(len) + 1);
    if (rc) goto done;
    *b64_out = out;
    out = NULL;
done:
    free(out);
    free(cipher);
    return rc;
}

int wecom_encrypt(const wecom_crypto *c, const uint8_t *random16, const char *msg, size_t msg_len,
                  char **b64_out) {
    uint8_t *plain = NULL;
    size_t total = 0;
    int rc = WECOM_E_INVALID_ARG;

    if (b64_out) *b64_out = NULL;
    if (!c || !b64_out || (!msg && msg_len)) goto done;
    rc = WECOM_E_TOO_LARGE;
    if (msg_len > WECOM_MSG_MAX) goto done;

    size_t n = HEADER_LEN + msg_len + c->receiveid_len;
    size_t pad = PAD_BLOCK - n % PAD_BLOCK; /* 1..32; a full block when n % 32 == 0 */
    total = n + pad;
    rc = WECOM_E_NOMEM;
    plain = malloc(total);
    if (!plain) goto done;

    rc = WECOM_E_ENCRYPT_AES;
    if (random16)
        memcpy(plain, random16, RANDOM_LEN);
    else if (RAND_bytes(plain, RANDOM_LEN) != 1)
        goto done;
    be32_write(plain + RANDOM_LEN, (uint32_t)msg_len);
    if (msg_len) memcpy(plain + HEADER_LEN, msg, msg_len);
    if (c->receiveid_len) memcpy(plain + HEADER_LEN + msg_len, c->receiveid, c->receiveid_len);
    memset(plain + n, (int)pad, pad);
    rc = wecom__encrypt_raw(c, plain, total, b64_out);
done:
    if (plain) OPENSSL_cleanse(plain, total);
    free(plain);
    return rc;
}

int wecom_verify_decrypt(const wecom_crypto *c, const char *msg_signature, const char *timestamp,
                         const char *nonce, const char *encrypt, size_t encrypt_len, char **msg_out,
                         size_t *msg_len_out) {
    if (msg_out) *msg_out = NULL;
    if (msg_len_out) *msg_len_out = 0;
    if (!c) return WECOM_E_INVALID_ARG;
    if (encrypt_len > WECOM_ENCRYPT_MAX) return WECOM_E_TOO_LARGE;
    int rc =
        wecom_signature_verify(c->token, msg_signature, timestamp, nonce, encrypt, encrypt_len);
    if (rc) return rc;
    return wecom_decrypt(c, encrypt, encrypt_len, msg_out, msg_len_out);
}

int wecom_callback_build(const wecom_crypto *c, const char *timestamp, const char *nonce,
                         const uint8_t *random16, const char *msg, size_t msg_len,
                         char **body_xml_out, char out_sig_hex[41]) {
    static const char fmt[] = "<xml><ToUserName><![CDATA[%s]]></ToUserName>"
                              "<Encrypt><![CDATA[%s]]></Encrypt>"
                              "<AgentID><![CDATA[]]></AgentID></xml>";
    char *enc = NULL, *body = NULL;
    int rc = WECOM_E_INVALID_ARG;

    if (body_xml_out) *body_xml_out = NULL;
    if (!c || !body_xml_out || !out_sig_hex) goto done;
    out_sig_hex[0] = '\0';
    rc = WECOM_E_GEN_RETURN_XML;
    if (strstr(c->receiveid, "]]>")) goto done;
    rc = wecom_encrypt(c, random16, msg, msg_len, &enc);
    if (rc) goto done;
    size_t enc_len = strlen(enc);
    rc = wecom_signature(c->token, timestamp, nonce, enc, enc_len, out_sig_hex);
    if (rc) goto done;

    rc = WECOM_E_NOMEM;
    size_t cap = sizeof fmt + c->receiveid_len + enc_len;
    body = malloc(cap);
    if (!body) goto done;
    rc = WECOM_E_GEN_RETURN_XML;
    int w = snprintf(body, cap, fmt, c->receiveid, enc);
    if (w < 0 || (size_t)w >= cap) goto done;
    *body_xml_out = body;
    body = NULL;
    rc = WECOM_OK;
done:
    if (rc && out_sig_hex) out_sig_hex[0] = '\0';
    free(body);
    free(enc);
    return rc;
}
