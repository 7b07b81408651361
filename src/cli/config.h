/* config.h — server configuration: flags > SIYU_* environment > config file >
 * defaults. Each key is one row of the table in config.c. */
#ifndef SIYU_CONFIG_H
#define SIYU_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "util/err.h"

typedef struct siyu_config {
    char data[512];
    char listen[128];
    int threads;
    long max_body;
    char log_level[16];
    int batch_max;
    int queue_max;
    int replay_window;
    char wecom_base_url[256];
    int wecom_timeout_ms;
    int wecom_retries;
    int outbox_workers;
    int outbox_max_attempts;
    int sync_interval;
    int transfer_poll;
    int transfer_poll_age;
    int channel_roster_interval;
    char config[512];
} siyu_config;

/* Fills cfg from defaults, the config file (SIYU_CONFIG or --config), the
 * environment and argv (long options "--key value" or "--key=value", with
 * '-' or '_' in key names). Unknown flags are errors naming the flag.
 * Returns 0 or SIYU_EINVAL with err naming file:line and key. */
int config_load(siyu_config *cfg, int argc, char **argv, siyu_err *err);
/* Prints every key with env name, default and help. */
void config_usage(FILE *f);

#endif
