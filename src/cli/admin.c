/* admin.c — scriptable administration that works while the server runs:
 * `siyu tenant create`, `siyu token create`, `siyu migrate`. These open the
 * database directly; SQLite's locking serialises them with the server's
 * writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "store/store.h"
#include "store/tenant.h"
#include "util/log.h"

const char *cli_flag(int argc, char **argv, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0 || strncmp(argv[i] + 2, name, n) != 0) continue;
        if (argv[i][2 + n] == '=') return argv[i] + 3 + n;
        if (argv[i][2 + n] == 0 && i + 1 < argc) return argv[i + 1];
    }
    return NULL;
}

int cli_check_flags(int argc, char **argv, const char *const *allowed, const char *usage) {
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "siyu: unexpected argument '%s'\n%s", argv[i], usage);
            return 2;
        }
        const char *a = argv[i] + 2;
        size_t n = strcspn(a, "=");
        bool ok = false;
        for (const char *const *f = allowed; *f; f++)
            if (strlen(*f) == n && strncmp(*f, a, n) == 0) ok = true;
        if (!ok) {
            fprintf(stderr, "siyu: unknown flag '%s'\n%s", argv[i], usage);
            return 2;
        }
        if (!a[n]) i++;
    }
    return 0;
}

static store *open_data(const char *data) {
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    store *st = store_open(data ? data : (getenv("SIYU_DATA") ? getenv("SIYU_DATA") : "./data"),
                           &o, &err);
    if (!st) fprintf(stderr, "siyu: %s\n", err.msg);
    return st;
}

static const char tenant_usage[] =
    "usage: siyu tenant create --data DIR --name NAME [--corp-id ID --callback-token TOKEN "
    "--aes-key KEY [--secret SECRET]]\n"
    "  Creates a tenant and prints its id. The three callback flags go together;\n"
    "  --secret (the 客户联系 secret for outbound WeCom API calls) needs them.\n";

int cli_tenant(int argc, char **argv) {
    static const char *const allowed[] = {"data", "name", "corp-id", "callback-token",
                                          "aes-key", "secret", NULL};
    if (argc < 1 || strcmp(argv[0], "create") != 0) {
        fputs(tenant_usage, argc >= 1 && !strcmp(argv[0], "--help") ? stdout : stderr);
        return argc >= 1 && !strcmp(argv[0], "--help") ? 0 : 2;
    }
    if (cli_check_flags(argc - 1, argv + 1, allowed, tenant_usage)) return 2;
    tenant_input in = {0};
    in.name = cli_flag(argc, argv, "name");
    in.corp_id = cli_flag(argc, argv, "corp-id");
    in.callback_token = cli_flag(argc, argv, "callback-token");
    in.aes_key = cli_flag(argc, argv, "aes-key");
    in.secret = cli_flag(argc, argv, "secret");
    in.actor = "cli";
    if (!in.name) {
        fprintf(stderr, "siyu: --name is required\n%s", tenant_usage);
        return 2;
    }
    store *st = open_data(cli_flag(argc, argv, "data"));
    if (!st) return 1;
    int rc = store_write(st, tenant_create, &in);
    store_close(st);
    if (rc != 0) {
        fprintf(stderr, "siyu: %s\n", in.err.msg[0] ? in.err.msg : siyu_strerror(rc));
        return 1;
    }
    printf("%lld\n", (long long)in.id);
    return 0;
}

static const char token_usage[] =
    "usage: siyu token create --data DIR [--tenant ID] --role admin|operator|manager|employee "
    "[--employee USERID] [--label TEXT]\n"
    "  Prints a new API token once; only its hash is stored. Without --tenant, --role admin\n"
    "  makes a platform token that manages tenants.\n";

int cli_token(int argc, char **argv) {
    static const char *const allowed[] = {"data", "tenant", "role", "employee", "label", NULL};
    if (argc < 1 || strcmp(argv[0], "create") != 0) {
        fputs(token_usage, argc >= 1 && !strcmp(argv[0], "--help") ? stdout : stderr);
        return argc >= 1 && !strcmp(argv[0], "--help") ? 0 : 2;
    }
    if (cli_check_flags(argc - 1, argv + 1, allowed, token_usage)) return 2;
    auth_token_new t = {0};
    const char *tenant = cli_flag(argc, argv, "tenant");
    const char *role = cli_flag(argc, argv, "role");
    t.role = http_role_parse(role);
    if (!t.role) {
        fprintf(stderr, "siyu: --role must be admin, operator, manager or employee\n%s",
                token_usage);
        return 2;
    }
    if (tenant) {
        char *end;
        t.tenant_id = strtoll(tenant, &end, 10);
        if (*end || t.tenant_id <= 0) {
            fprintf(stderr, "siyu: --tenant must be a tenant id, got '%s'\n", tenant);
            return 2;
        }
    }
    t.employee_userid = cli_flag(argc, argv, "employee");
    t.label = cli_flag(argc, argv, "label");
    t.actor = "cli";
    store *st = open_data(cli_flag(argc, argv, "data"));
    if (!st) return 1;
    int rc = store_write(st, auth_token_insert, &t);
    store_close(st);
    if (rc != 0) {
        fprintf(stderr, "siyu: %s\n", t.err.msg[0] ? t.err.msg : siyu_strerror(rc));
        return 1;
    }
    printf("%s\n", t.token);
    return 0;
}

int cli_migrate(int argc, char **argv) {
    static const char *const allowed[] = {"data", NULL};
    if (cli_check_flags(argc, argv, allowed, "usage: siyu migrate --data DIR\n")) return 2;
    store *st = open_data(cli_flag(argc, argv, "data"));
    if (!st) return 1;
    printf("schema version %d\n", store_schema_version(st));
    store_close(st);
    return 0;
}
