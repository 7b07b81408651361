/* main.c — subcommand dispatch only. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "cli/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"serve", cli_serve, "run the HTTP API and WeCom callback receiver"},
    {"tenant", cli_tenant, "tenant create: create a tenant and print its id"},
    {"token", cli_token, "token create: create an API token and print it once"},
    {"migrate", cli_migrate, "apply schema migrations and print the schema version"},
    {"sync", cli_sync, "full sync of a tenant with WeCom, with progress (server may run)"},
    {"segment", cli_segment, "count, list or export a segment (data directory or server)"},
    {"demo", cli_demo, "run the live demo: server + WeCom simulator + simulated brand (make demo)"},
    {"demo-seed", cli_demo_seed, "seed a sample tenant into a data directory (used by make demo)"},
    {"wecom-sim", cli_wecom_sim, "simulate WeCom: its API, callbacks and a seeded population"},
    {"report", cli_report, "analytics: dashboard, funnel, cohort, rfm, churn, kpi tables or JSON"},
};

static void usage(FILE *f) {
    fprintf(f,
            "siyu %s — private-domain customer operations for WeCom\n\n"
            "usage: siyu <command> [options]   (siyu <command> --help for details)\n\n"
            "commands:\n",
            SIYU_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("siyu %s\n", SIYU_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "siyu: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
