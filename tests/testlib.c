/* testlib.c — see testlib.h. */
#include "testlib.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *t_tmpdir(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *p = NULL;
    if (asprintf(&p, "%s/siyu-test-XXXXXX", base) < 0) return NULL;
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void t_rmdir(char *dir) {
    if (!dir) return;
    if (getenv("KEEP") && strcmp(getenv("KEEP"), "1") == 0)
        fprintf(stderr, "keeping %s\n", dir);
    else
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static const char *bin(void) {
    const char *b = getenv("SIYU_BIN");
    return b ? b : "./siyu";
}

int t_server_start(t_server *s, const char *data, const char *const *extra) {
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    const char *argv[32] = {bin(), "serve", "--data", data, "--listen", "127.0.0.1:0"};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (!getenv("SIYU_TEST_VERBOSE")) {
            int dn = open("/dev/null", O_WRONLY);
            if (dn >= 0) dup2(dn, 2);
        }
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    s->pid = pid;
    s->port = 0;
    s->data = (char *)data;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "listening on ");
        if (p) {
            const char *colon = strrchr(p, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            break;
        }
    }
    if (f) fclose(f);
    if (!s->port) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    return 0;
}

int t_server_stop(t_server *s) {
    int status = 0;
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    if (waitpid(s->pid, &status, 0) < 0) return -1;
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void t_server_kill(t_server *s) {
    if (s->pid <= 0) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

int t_siyu(char **out, const char *const *args) {
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    const char *argv[32] = {bin()};
    int n = 1;
    for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(pfd[1]);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    ssize_t k;
    while ((k = read(pfd[0], chunk, sizeof chunk)) > 0) fwrite(chunk, 1, (size_t)k, m);
    fclose(m);
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t on_data(char *p, size_t sz, size_t n, void *u) {
    FILE *f = u;
    return fwrite(p, sz, n, f);
}

int t_http(t_server *s, const char *method, const char *path, const char *token,
           const char *body, size_t body_len, const char *content_type, t_resp *out) {
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char url[2048], auth[256], ct[128];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *h = NULL;
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type : "application/json");
    h = curl_slist_append(h, ct);
    h = curl_slist_append(h, "Expect:");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    fclose(m);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    out->body = buf;
    out->len = len;
    if (len) out->json = json_loadb(buf, len, 0, NULL);
    return rc == CURLE_OK ? 0 : -1;
}

int t_api(t_server *s, const char *method, const char *path, const char *token, t_resp *out,
          const char *fmt, ...) {
    char *body = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        json_t *j = json_vpack_ex(NULL, 0, fmt, ap);
        va_end(ap);
        if (!j) return -1;
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    int rc = t_http(s, method, path, token, body, body ? strlen(body) : 0, NULL, out);
    free(body);
    return rc;
}

void t_resp_free(t_resp *r) {
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *t_err_code(const t_resp *r) {
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "";
}
