/* sim.h — `siyu wecom-sim`: a WeCom simulator. It plays WeCom's side of the
 * protocol for tests and the demo: the /cgi-bin API with WeCom's rules and
 * errcodes, encrypted callbacks pushed to a receiver for a seeded, simulated
 * population, and a loopback-only admin API under /sim/ (stats, dump, run,
 * act, fault, clock). See /work/prompts/common.md "The simulator contract".
 *
 * A sim is created with sim_create (builds the world and its history), started
 * with sim_start (HTTP server, callback pushers, live traffic) and released
 * with sim_free (stops everything first). */
#ifndef SIYU_SIM_H
#define SIYU_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

typedef struct sim_options {
    const char *listen; /* "127.0.0.1:0" */
    const char *corp_id, *secret;
    const char *callback_url, *callback_token, *aes_key; /* all or none */
    uint64_t seed;
    int stores, departments, employees, customers, channels, groups, tags;
    int history_days;
    bool replay_history;
    double rate; /* live actions per second, 0 = none */
    int token_ttl, welcome_ttl, takeover_delay;
    double refuse_rate;
    int push_concurrency;
    int msg_quota;
    bool no_callbacks; /* POST /sim/config {"callbacks":false}: changes push nothing */
} sim_options;

/* Defaults of the contract (listen 127.0.0.1:0, seed 1, 50 stores, ...). */
void sim_options_default(sim_options *o);

typedef struct sim sim;

/* Builds the world and its history. NULL on failure with err set. */
sim *sim_create(const sim_options *o, siyu_err *err);
/* Starts the HTTP server, the pushers and the live traffic thread. 0 or a
 * negative SIYU_E* code with err set. */
int sim_start(sim *s, siyu_err *err);
/* The bound port after sim_start. */
int sim_port(sim *s);
/* Stops and frees; sim_free(NULL) does nothing. */
void sim_free(sim *s);

#endif
