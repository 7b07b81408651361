/* api_org.c — (being written) */
#include "api/api.h"

const http_route api_org_routes[] = {
    {NULL, NULL, NULL, 0, NULL, 0},
};
