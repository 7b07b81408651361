/* phone.c — mainland mobile numbers (see phone.h). */
#include "util/phone.h"

#include <openssl/evp.h>
#include <string.h>

#include "util/err.h"

int phone_normalize(const char *in, char out[PHONE_DIGITS + 1], const char **why) {
    char digits[PHONE_INPUT_MAX + 1];
    size_t n = 0, len = in ? strlen(in) : 0;
    const char *p = in;
    if (!in || len == 0) {
        *why = "is empty";
        return SIYU_EINVAL;
    }
    if (len > PHONE_INPUT_MAX) {
        *why = "is too long";
        return SIYU_EINVAL;
    }
    bool plus = *p == '+';
    if (plus) p++;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
        else if ((*p == ' ' || *p == '-') && n > 0 && p[1] >= '0' && p[1] <= '9')
            continue; /* a separator between digits */
        else {
            *why = "may only hold digits, an optional +86 prefix, spaces and hyphens";
            return SIYU_EINVAL;
        }
    }
    digits[n] = 0;
    const char *d = digits;
    if (plus || n == PHONE_DIGITS + 2) {
        if (strncmp(digits, "86", 2) != 0) {
            *why = "must be a mainland China mobile number (+86)";
            return SIYU_EINVAL;
        }
        d += 2;
        n -= 2;
    }
    if (n != PHONE_DIGITS || d[0] != '1' || d[1] < '3') {
        *why = "must be an 11-digit mainland mobile number starting with 13..19";
        return SIYU_EINVAL;
    }
    memcpy(out, d, PHONE_DIGITS);
    out[PHONE_DIGITS] = 0;
    return 0;
}

void phone_mask(const char *phone, char out[PHONE_DIGITS + 1]) {
    if (!phone || strlen(phone) != PHONE_DIGITS) {
        strcpy(out, "****");
        return;
    }
    memcpy(out, phone, 3);
    memcpy(out + 3, "****", 4);
    memcpy(out + 7, phone + 7, 4);
    out[PHONE_DIGITS] = 0;
}

int phone_hash_hex(const char *s, size_t len, bool sha256, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s, len, md, &mdlen, sha256 ? EVP_sha256() : EVP_md5(), NULL)) {
        out[0] = 0;
        return SIYU_ENOMEM;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * mdlen] = 0;
    return 0;
}
