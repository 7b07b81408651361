/* api_event.c — (being written) */
#include "api/api.h"

const http_route api_event_routes[] = {
    {NULL, NULL, NULL, 0, NULL, 0},
};
