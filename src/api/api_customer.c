/* api_customer.c — (being written) */
#include "api/api.h"

const http_route api_customer_routes[] = {
    {NULL, NULL, NULL, 0, NULL, 0},
};
