/* config.c — the config key table and its three sources. */
#include "cli/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

typedef enum { CT_STR, CT_INT, CT_LONG } cfg_type;

typedef struct cfg_key {
    const char *name;
    cfg_type type;
    size_t off;
    size_t cap; /* strings */
    const char *def;
    long min, max;
    const char *help;
} cfg_key;

#define STR(f, d, h) {#f, CT_STR, offsetof(siyu_config, f), sizeof(((siyu_config *)0)->f), d, 0, 0, h}
#define INT(f, d, lo, hi, h) {#f, CT_INT, offsetof(siyu_config, f), 0, d, lo, hi, h}
#define LONG(f, d, lo, hi, h) {#f, CT_LONG, offsetof(siyu_config, f), 0, d, lo, hi, h}

static const cfg_key keys[] = {
    STR(data, "./data", "data directory holding siyu.db"),
    STR(listen, "127.0.0.1:8080", "IPv4 ADDR:PORT to serve HTTP on (port 0 = any free port)"),
    INT(threads, "4", 1, 256, "HTTP worker threads"),
    LONG(max_body, "1048576", 1024, 64L << 20, "default request body limit in bytes"),
    STR(log_level, "info", "debug | info | warn | error"),
    INT(batch_max, "4096", 1, 100000, "most write commands per transaction (group commit)"),
    INT(queue_max, "20000", 1, 10000000, "queued writes before requests get 429"),
    INT(replay_window, "0", 0, 86400 * 365,
        "reject callbacks whose timestamp is further than this many seconds from now (0 = off)"),
    STR(wecom_base_url, "https://qyapi.weixin.qq.com",
        "WeCom API base URL (point it at `siyu wecom-sim` for tests and demos)"),
    INT(wecom_timeout_ms, "10000", 100, 120000, "timeout of one WeCom API request"),
    INT(wecom_retries, "3", 0, 10, "retries of a WeCom call on busy/rate-limit/transport errors"),
    INT(outbox_workers, "2", 1, 64, "threads delivering outbox calls to WeCom"),
    INT(outbox_max_attempts, "8", 1, 100, "delivery attempts before an outbox call is dead"),
    INT(sync_interval, "21600", 0, 86400 * 30,
        "seconds between full syncs per tenant (0 = only on demand)"),
    INT(transfer_poll, "3600", 0, 86400 * 7,
        "seconds between transfer_result polls for transfers left waiting (0 = never)"),
    INT(transfer_poll_age, "86400", 0, 86400 * 30,
        "seconds a transfer waits for its callbacks before it is polled"),
    INT(channel_roster_interval, "60", 0, 86400,
        "seconds between recomputations of channel QR code rosters (0 = never)"),
    STR(config, "", "config file of 'key = value' lines"),
};
#define NKEYS (sizeof keys / sizeof *keys)

static const cfg_key *find_key(const char *name, size_t n) {
    for (size_t i = 0; i < NKEYS; i++) {
        const char *k = keys[i].name;
        if (strlen(k) != n) continue;
        size_t j = 0;
        for (; j < n; j++) {
            char c = name[j] == '-' ? '_' : name[j];
            if (c != k[j]) break;
        }
        if (j == n) return &keys[i];
    }
    return NULL;
}

static int set_value(siyu_config *cfg, const cfg_key *k, const char *v, const char *where,
                     siyu_err *err) {
    char *p = (char *)cfg + k->off;
    if (k->type == CT_STR) {
        if (strlen(v) >= k->cap)
            return siyu_err_set(err, SIYU_EINVAL, k->name, "%s: value of '%s' is too long", where,
                                k->name);
        strcpy(p, v);
        return 0;
    }
    errno = 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < k->min || x > k->max)
        return siyu_err_set(err, SIYU_EINVAL, k->name,
                            "%s: '%s' must be an integer in [%ld, %ld], got '%s'", where, k->name,
                            k->min, k->max, v);
    if (k->type == CT_INT) *(int *)p = (int)x;
    else *(long *)p = x;
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static int load_file(siyu_config *cfg, const char *path, siyu_err *err) {
    FILE *f = fopen(path, "r");
    if (!f)
        return siyu_err_set(err, SIYU_EINVAL, "config", "cannot open config file %s: %s", path,
                            strerror(errno));
    char line[1024], where[600];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        snprintf(where, sizeof where, "%s:%d", path, ln);
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = siyu_err_set(err, SIYU_EINVAL, "config", "%s: expected 'key = value'", where);
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        const cfg_key *key = find_key(k, strlen(k));
        if (!key || strcmp(key->name, "config") == 0) {
            rc = siyu_err_set(err, SIYU_EINVAL, k, "%s: unknown key '%s'", where, k);
            break;
        }
        if ((rc = set_value(cfg, key, v, where, err)) != 0) break;
    }
    fclose(f);
    return rc;
}

int config_load(siyu_config *cfg, int argc, char **argv, siyu_err *err) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        if (set_value(cfg, &keys[i], keys[i].def, "default", err) != 0) return SIYU_EINVAL;
    /* The config file's path may come from the flags or the environment. */
    const char *file = getenv("SIYU_CONFIG");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0) file = argv[i] + 9;
    }
    if (file && *file) {
        if (load_file(cfg, file, err) != 0) return SIYU_EINVAL;
        snprintf(cfg->config, sizeof cfg->config, "%s", file);
    }
    for (size_t i = 0; i < NKEYS; i++) {
        char env[64] = "SIYU_";
        for (size_t j = 0; keys[i].name[j] && j < 50; j++)
            env[5 + j] = (char)toupper((unsigned char)keys[i].name[j]), env[6 + j] = 0;
        const char *v = getenv(env);
        if (v && set_value(cfg, &keys[i], v, env, err) != 0) return SIYU_EINVAL;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return siyu_err_set(err, SIYU_EINVAL, a, "unexpected argument '%s'", a);
        a += 2;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const cfg_key *k = find_key(a, n);
        if (!k) return siyu_err_set(err, SIYU_EINVAL, argv[i], "unknown flag '%s'", argv[i]);
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return siyu_err_set(err, SIYU_EINVAL, k->name, "flag --%s needs a value", k->name);
        if (set_value(cfg, k, v, "flag", err) != 0) return SIYU_EINVAL;
    }
    if (log_level_parse(cfg->log_level) < 0)
        return siyu_err_set(err, SIYU_EINVAL, "log_level", "log_level must be debug, info, "
                            "warn or error, got '%s'", cfg->log_level);
    return 0;
}

void config_usage(FILE *f) {
    fprintf(f, "Options (flag, environment variable, default):\n");
    for (size_t i = 0; i < NKEYS; i++) {
        char flag[64], env[64] = "SIYU_";
        size_t j = 0;
        for (; keys[i].name[j] && j < 50; j++) {
            flag[j] = keys[i].name[j] == '_' ? '-' : keys[i].name[j];
            env[5 + j] = (char)toupper((unsigned char)keys[i].name[j]);
        }
        flag[j] = 0;
        env[5 + j] = 0;
        fprintf(f, "  --%-14s %-20s %-16s %s\n", flag, env,
                keys[i].def[0] ? keys[i].def : "(none)", keys[i].help);
    }
    fprintf(f, "Precedence: flags > environment > config file > defaults.\n");
}
