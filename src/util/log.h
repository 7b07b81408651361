/* log.h — JSON-lines logging to stderr. Callers never pass secrets or PII. */
#ifndef SIYU_LOG_H
#define SIYU_LOG_H

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the minimum level; thread-safe to call at start only. */
void log_set_level(int level);
int log_level_parse(const char *s);
/* Writes one line {"ts":..,"level":..,"msg":..} with msg formatted. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
