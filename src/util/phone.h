/* phone.h — mainland China mobile numbers: normalisation, masking, hashing.
 *
 * A phone number is personal data: callers never log it. The normal form is
 * the 11 digits alone ("13800138000"), which is what customer.phone holds
 * and what the hashed exports (MD5 / SHA-256, the custom-audience formats of
 * the ad platforms) digest. */
#ifndef SIYU_UTIL_PHONE_H
#define SIYU_UTIL_PHONE_H

#include <stdbool.h>
#include <stddef.h>

#define PHONE_DIGITS 11
#define PHONE_INPUT_MAX 32 /* bytes of an accepted input */

/* Normalises in: optional "+86" or "86" prefix, then 11 digits starting with
 * 1 and a second digit 3..9; spaces and hyphens between digits are ignored.
 * 0 with out = the 11 digits (NUL-terminated), or SIYU_EINVAL with why (a
 * static text that never repeats the input) set. */
int phone_normalize(const char *in, char out[PHONE_DIGITS + 1], const char **why);

/* "138****8000" from an 11-digit number; other input gives "****". */
void phone_mask(const char *phone, char out[PHONE_DIGITS + 1]);

/* Lowercase hex MD5 (32 chars) or SHA-256 (64 chars) of the len bytes of s,
 * NUL-terminated in out (at least 65 bytes). 0 or SIYU_ENOMEM. */
int phone_hash_hex(const char *s, size_t len, bool sha256, char out[65]);

#endif
