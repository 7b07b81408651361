/* text.h — checks for short user-given labels (segment names, a customer's
 * region and stage): valid UTF-8 is assumed (JSON strings are); these reject
 * control characters, which have no place in a label and confuse logs,
 * terminals and spreadsheets. */
#ifndef SIYU_UTIL_TEXT_H
#define SIYU_UTIL_TEXT_H

#include <stdbool.h>

/* True when s holds no C0 control (U+0000..U+001F), DEL (U+007F) or C1
 * control (U+0080..U+009F). */
bool text_is_clean(const char *s);

#endif
