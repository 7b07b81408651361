/* api_group.c — (being written) */
#include "api/api.h"

const http_route api_group_routes[] = {
    {NULL, NULL, NULL, 0, NULL, 0},
};
