/* api_tag.c — (being written) */
#include "api/api.h"

const http_route api_tag_routes[] = {
    {NULL, NULL, NULL, 0, NULL, 0},
};
