/* utf8.h — character counts for limits WeCom states in characters (a remark
 * of 20 characters, a transfer message of 200), not bytes. */
#ifndef SIYU_UTF8_H
#define SIYU_UTF8_H

#include <stddef.h>

/* Number of code points in the NUL-terminated UTF-8 string s (continuation
 * bytes are not counted). s must be valid UTF-8 (jansson strings are). */
size_t utf8_chars(const char *s);

#endif
