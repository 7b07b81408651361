/* wecom_callback.c — (being written) */
#include "api/api.h"

const http_route wecom_callback_routes[] = {
    {NULL, NULL, NULL, 0, NULL, 0},
};
