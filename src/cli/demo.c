/* demo.c — `siyu demo-seed`: (being written) */
#include <stdio.h>
#include "cli/cli.h"
int cli_demo_seed(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "demo-seed: not available yet\n");
    return 1;
}
