/* text.c — label checks (text.h). */
#include "util/text.h"

bool text_is_clean(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) return false;
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) return false; /* U+0080..U+009F */
    }
    return true;
}
