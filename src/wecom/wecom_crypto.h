/* wecom_crypto.h — the WeCom callback crypto protocol (WXBizMsgCrypt).
 *
 * Signature: lowercase hex SHA-1 over the byte-wise sorted concatenation of
 * token, timestamp, nonce and the Base64 ciphertext. Payload: AES-256-CBC with
 * IV = key[0..16), plaintext random16 | be32 msg_len | msg | receiveid, padded
 * PKCS#7-style to a multiple of 32 bytes, Base64 with '=' padding.
 * Protocol reference: WeCom doc 91144 (encryption scheme); project WeCom spec §1.
 *
 * A wecom_crypto is caller-owned (stack, struct member) and immutable after
 * wecom_crypto_init, so one instance may be shared by any number of threads.
 * Every buffer this module returns through a `char **` is malloc'd and freed by
 * the caller with free(). Error codes are the official sample library's (§1.8)
 * plus three local ones below -40100. */
#ifndef SIYU_WECOM_CRYPTO_H
#define SIYU_WECOM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* Official codes (sample library errorCode / ierror). */
#define WECOM_OK 0
#define WECOM_E_SIGNATURE (-40001)         /* ValidateSignature_Error */
#define WECOM_E_PARSE_XML (-40002)         /* ParseXml_Error */
#define WECOM_E_COMPUTE_SIGNATURE (-40003) /* ComputeSignature_Error */
#define WECOM_E_ILLEGAL_AES_KEY (-40004)   /* IllegalAesKey */
#define WECOM_E_RECEIVEID (-40005)         /* ValidateCorpid_Error */
#define WECOM_E_ENCRYPT_AES (-40006)       /* EncryptAES_Error */
#define WECOM_E_DECRYPT_AES (-40007)       /* DecryptAES_Error */
#define WECOM_E_ILLEGAL_BUFFER (-40008)    /* IllegalBuffer */
#define WECOM_E_ENCODE_BASE64 (-40009)     /* EncodeBase64_Error */
#define WECOM_E_DECODE_BASE64 (-40010)     /* DecodeBase64_Error */
#define WECOM_E_GEN_RETURN_XML (-40011)    /* GenReturnXml_Error */
/* Local codes (not sent by WeCom). */
#define WECOM_E_INVALID_ARG (-40101) /* NULL argument, bad token/receiveid */
#define WECOM_E_TOO_LARGE (-40102)   /* input exceeds a WECOM_*_MAX limit (HTTP 413) */
#define WECOM_E_NOMEM (-40103)       /* allocation failed */

#define WECOM_AES_KEY_LEN 32
#define WECOM_ENCODING_AES_KEY_LEN 43
#define WECOM_TOKEN_MAX 128          /* bytes, excluding NUL */
#define WECOM_RECEIVEID_MAX 128      /* bytes, excluding NUL; may be empty (§1.9) */
#define WECOM_ENCRYPT_MAX (1u << 20) /* longest Base64 ciphertext accepted */
#define WECOM_MSG_MAX (512u << 10)   /* longest plaintext message encrypted */

typedef struct wecom_crypto {
    uint8_t key[WECOM_AES_KEY_LEN]; /* AES key; IV is key[0..16) */
    char token[WECOM_TOKEN_MAX + 1];
    size_t token_len;
    char receiveid[WECOM_RECEIVEID_MAX + 1];
    size_t receiveid_len;
} wecom_crypto;

/* Short name and meaning of a WECOM_* code ("ValidateSignature_Error: ...").
 * Never NULL; unknown codes give "unknown error". */
const char *wecom_crypto_strerror(int code);

/* Set up c from the callback configuration. encoding_aes_key must be exactly
 * 43 chars of [A-Za-z0-9]; it is decoded as Base64 of key+"=" leniently (the
 * unused low bits of the last char are ignored, as official libraries do).
 * token: 1..WECOM_TOKEN_MAX printable ASCII bytes. receiveid: 0..WECOM_RECEIVEID_MAX
 * printable ASCII bytes. Returns WECOM_E_ILLEGAL_AES_KEY for a bad key,
 * WECOM_E_INVALID_ARG for a bad token/receiveid; c is then zeroed. */
int wecom_crypto_init(wecom_crypto *c, const char *token, const char *encoding_aes_key,
                      const char *receiveid);

/* Wipe the key material. Safe on a zeroed struct and twice. */
void wecom_crypto_reset(wecom_crypto *c);

/* msg_signature of (token, timestamp, nonce, encrypt[0..encrypt_len)) into
 * out_hex (40 lowercase hex chars + NUL). Returns WECOM_E_INVALID_ARG on a NULL
 * argument, WECOM_E_COMPUTE_SIGNATURE if SHA-1 fails. */
int wecom_signature(const char *token, const char *timestamp, const char *nonce,
                    const char *encrypt, size_t encrypt_len, char out_hex[41]);

/* Recompute the signature and compare it with msg_signature in constant time.
 * Returns 0 on match, WECOM_E_SIGNATURE on mismatch (including a wrong length). */
int wecom_signature_verify(const char *token, const char *msg_signature, const char *timestamp,
                           const char *nonce, const char *encrypt, size_t encrypt_len);

/* Decrypt a Base64 ciphertext (POST <Encrypt> text or URL-decoded echostr).
 * On success *msg_out is a malloc'd NUL-terminated copy of msg (the caller frees
 * it) and *msg_len_out (if not NULL) its length; msg may contain NUL bytes.
 * On failure *msg_out is NULL and the result is one of WECOM_E_TOO_LARGE
 * (b64_len > WECOM_ENCRYPT_MAX), WECOM_E_DECODE_BASE64, WECOM_E_DECRYPT_AES
 * (length not a non-zero multiple of 16), WECOM_E_ILLEGAL_BUFFER (pad byte not
 * 1..32, msg_len out of bounds), WECOM_E_RECEIVEID, WECOM_E_NOMEM. */
int wecom_decrypt(const wecom_crypto *c, const char *b64, size_t b64_len, char **msg_out,
                  size_t *msg_len_out);

/* Encrypt msg for c->receiveid. random16 is the 16-byte prefix; NULL draws it
 * from RAND_bytes (pass a fixed one only for test vectors). *b64_out is
 * malloc'd, NUL-terminated, freed by the caller; NULL on failure. Returns
 * WECOM_E_TOO_LARGE (msg_len > WECOM_MSG_MAX), WECOM_E_ENCRYPT_AES, WECOM_E_NOMEM. */
int wecom_encrypt(const wecom_crypto *c, const uint8_t *random16, const char *msg, size_t msg_len,
                  char **b64_out);

/* The POST/GET handler's step: verify msg_signature over encrypt with c->token,
 * then wecom_decrypt. Same results and ownership as those two. */
int wecom_verify_decrypt(const wecom_crypto *c, const char *msg_signature, const char *timestamp,
                         const char *nonce, const char *encrypt, size_t encrypt_len, char **msg_out,
                         size_t *msg_len_out);

/* The sender's side (simulator, tests, benchmarks): encrypt msg and build the
 * outer POST body
 *   <xml><ToUserName><![CDATA[receiveid]]></ToUserName><Encrypt><![CDATA[...]]>
 *   </Encrypt><AgentID><![CDATA[]]></AgentID></xml>      (one line)
 * plus its msg_signature for the query string. *body_xml_out is malloc'd, freed
 * by the caller; NULL on failure. WECOM_E_GEN_RETURN_XML if receiveid contains "]]>". */
int wecom_callback_build(const wecom_crypto *c, const char *timestamp, const char *nonce,
                         const uint8_t *random16, const char *msg, size_t msg_len,
                         char **body_xml_out, char out_sig_hex[41]);

/* Standard Base64 with '=' padding into out (out_cap >= 4*ceil(in_len/3)+1,
 * NUL-terminated). Returns WECOM_E_ENCODE_BASE64 if out is too small. */
int wecom_base64_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap);

/* Decode standard Base64: length a multiple of 4, '=' only as final padding, no
 * whitespace; unused trailing bits are ignored. Needs out_cap >= in_len/4*3.
 * Returns WECOM_E_DECODE_BASE64 on any violation. */
int wecom_base64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                        size_t *out_len);

/* Internal, for tests and the fuzzer: AES-256-CBC encrypt an already laid-out
 * and padded plaintext (len a non-zero multiple of 16, no padding added) and
 * Base64 it into malloc'd *b64_out. Lets tests build malformed pads/lengths. */
int wecom__encrypt_raw(const wecom_crypto *c, const uint8_t *plain, size_t len, char **b64_out);

#endif
