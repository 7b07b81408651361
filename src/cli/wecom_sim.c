/* wecom_sim.c — `siyu wecom-sim`: flags into sim_options, build the world,
 * start serving and pushing, print the ready line, wait for SIGINT/SIGTERM,
 * stop cleanly (exit 0). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "sim/sim.h"
#include "util/log.h"

static const char sim_usage[] =
    "usage: siyu wecom-sim [--listen 127.0.0.1:0] --corp-id ID --secret SECRET\n"
    "    [--callback-url URL --callback-token TOKEN --aes-key KEY]\n"
    "    [--seed 1] [--stores 50] [--departments 12] [--employees 500]\n"
    "    [--customers 100000] [--channels 200] [--groups 1000] [--tags 60]\n"
    "    [--history-days 90] [--replay-history] [--rate 0]\n"
    "    [--token-ttl 7200] [--welcome-ttl 20] [--takeover-delay 86400]\n"
    "    [--refuse-rate 0.05] [--push-concurrency 8] [--msg-quota 1]\n"
    "  Simulates WeCom: serves /cgi-bin/... with WeCom's rules and errcodes, pushes\n"
    "  encrypted callbacks for a seeded population to --callback-url, and offers a\n"
    "  loopback admin API under /sim/ (stats, dump, run, act, fault, clock).\n"
    "  Prints 'wecom-sim: listening on HOST:PORT' when ready; stops on SIGINT/SIGTERM.\n";

/* Parses an integer flag into *v; false (with a message) when malformed. */
static bool int_flag(int argc, char **argv, const char *name, int *v) {
    const char *s = cli_flag(argc, argv, name);
    if (!s) return true;
    char *end = NULL;
    long n = strtol(s, &end, 10);
    if (!*s || *end || n < -1000000000L || n > 1000000000L) {
        fprintf(stderr, "siyu wecom-sim: --%s must be an integer\n", name);
        return false;
    }
    *v = (int)n;
    return true;
}

static bool num_flag(int argc, char **argv, const char *name, double *v) {
    const char *s = cli_flag(argc, argv, name);
    if (!s) return true;
    char *end = NULL;
    double d = strtod(s, &end);
    if (!*s || *end) {
        fprintf(stderr, "siyu wecom-sim: --%s must be a number\n", name);
        return false;
    }
    *v = d;
    return true;
}

int cli_wecom_sim(int argc, char **argv) {
    static const char *const allowed[] = {"listen",
                                          "corp-id",
                                          "secret",
                                          "callback-url",
                                          "callback-token",
                                          "aes-key",
                                          "seed",
                                          "stores",
                                          "departments",
                                          "employees",
                                          "customers",
                                          "channels",
                                          "groups",
                                          "tags",
                                          "history-days",
                                          "replay-history",
                                          "rate",
                                          "token-ttl",
                                          "welcome-ttl",
                                          "takeover-delay",
                                          "refuse-rate",
                                          "push-concurrency",
                                          "msg-quota",
                                          "log-level",
                                          NULL};
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sim_usage, stdout);
            return 0;
        }
    /* --replay-history takes no value: check the others without it */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    bool replay = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--replay-history"))
            replay = true;
        else
            rest[nrest++] = argv[i];
    }
    int rc = cli_check_flags(nrest, rest, allowed, sim_usage);
    sim_options o;
    sim_options_default(&o);
    o.replay_history = replay;
    if (rc == 0) {
        const char *v;
        if ((v = cli_flag(nrest, rest, "listen"))) o.listen = v;
        o.corp_id = cli_flag(nrest, rest, "corp-id");
        o.secret = cli_flag(nrest, rest, "secret");
        o.callback_url = cli_flag(nrest, rest, "callback-url");
        o.callback_token = cli_flag(nrest, rest, "callback-token");
        o.aes_key = cli_flag(nrest, rest, "aes-key");
        if ((v = cli_flag(nrest, rest, "log-level"))) log_set_level(log_level_parse(v));
        double seed = 1;
        bool ok =
            num_flag(nrest, rest, "seed", &seed) && int_flag(nrest, rest, "stores", &o.stores) &&
            int_flag(nrest, rest, "departments", &o.departments) &&
            int_flag(nrest, rest, "employees", &o.employees) &&
            int_flag(nrest, rest, "customers", &o.customers) &&
            int_flag(nrest, rest, "channels", &o.channels) &&
            int_flag(nrest, rest, "groups", &o.groups) && int_flag(nrest, rest, "tags", &o.tags) &&
            int_flag(nrest, rest, "history-days", &o.history_days) &&
            num_flag(nrest, rest, "rate", &o.rate) &&
            int_flag(nrest, rest, "token-ttl", &o.token_ttl) &&
            int_flag(nrest, rest, "welcome-ttl", &o.welcome_ttl) &&
            int_flag(nrest, rest, "takeover-delay", &o.takeover_delay) &&
            num_flag(nrest, rest, "refuse-rate", &o.refuse_rate) &&
            int_flag(nrest, rest, "push-concurrency", &o.push_concurrency) &&
            int_flag(nrest, rest, "msg-quota", &o.msg_quota);
        o.seed = (uint64_t)seed;
        if (!ok) rc = 2;
    }
    if (rc != 0) {
        free(rest);
        return rc;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    siyu_err err = {0};
    sim *s = sim_create(&o, &err);
    if (!s) {
        fprintf(stderr, "siyu wecom-sim: %s\n", err.msg);
        free(rest);
        curl_global_cleanup();
        return 2;
    }
    if (sim_start(s, &err) != 0) {
        fprintf(stderr, "siyu wecom-sim: %s\n", err.msg);
        sim_free(s);
        free(rest);
        curl_global_cleanup();
        return 1;
    }
    char host[128];
    snprintf(host, sizeof host, "%s", o.listen);
    char *colon = strrchr(host, ':');
    if (colon) *colon = 0;
    log_info("wecom-sim: seed=%llu customers=%d employees=%d listening on %s:%d",
             (unsigned long long)o.seed, o.customers, o.employees, host, sim_port(s));
    printf("wecom-sim: listening on %s:%d\n", host, sim_port(s));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("wecom-sim: signal %d: stopping", sig);
    sim_free(s);
    free(rest);
    curl_global_cleanup();
    return 0;
}
