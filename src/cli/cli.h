/* cli.h — subcommands. Each returns the process exit status. */
#ifndef SIYU_CLI_H
#define SIYU_CLI_H

int cli_serve(int argc, char **argv);
int cli_tenant(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_demo_seed(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_sync(int argc, char **argv);
int cli_wecom_sim(int argc, char **argv);
int cli_segment(int argc, char **argv);
int cli_report(int argc, char **argv);

/* Shared flag parsing: finds "--name value" or "--name=value"; NULL if absent. */
const char *cli_flag(int argc, char **argv, const char *name);
/* Fails (returns 2 with a message) when argv holds a flag not in allowed. */
int cli_check_flags(int argc, char **argv, const char *const *allowed, const char *usage);

#endif
