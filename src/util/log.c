/* log.c — one JSON object per line on stderr; the message is JSON-escaped. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int min_level = LOG_INFO;

void log_set_level(int level) {
    min_level = level;
}

int log_level_parse(const char *s) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

void log_msg(int level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < min_level) return;
    char msg[1024], esc[2200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && j < sizeof esc - 8; p++) {
        if (*p == '"' || *p == '\\') {
            esc[j++] = '\\';
            esc[j++] = (char)*p;
        } else if (*p < 0x20) {
            j += (size_t)snprintf(esc + j, sizeof esc - j, "\\u%04x", *p);
        } else {
            esc[j++] = (char)*p;
        }
    }
    esc[j] = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, names[level & 3], esc);
}
