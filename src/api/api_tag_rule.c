/* api_tag_rule.c — auto-tag rules (F6) as data: /api/v1/tag-rules CRUD
 * (store/tag_rule.h; docs/WELCOME.md "Auto-tag rules"). Admin and operator
 * only, as for tags. A rule shows its hit count and last hit.
 * The handlers are api.c's api_json_* over this kind. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/tag_rule.h"

static const api_json_kind kind = {"tag rule",      tag_rule_list,    tag_rule_get_json,
                                   tag_rule_create, tag_rule_replace, tag_rule_delete};

const http_route api_tag_rule_routes[] = {
    {"GET", "/api/v1/tag-rules", api_json_list, ROLES_OFFICE,
     "Auto-tag rules with their hit counts", 0, NULL, &kind},
    {"POST", "/api/v1/tag-rules", api_json_create, ROLES_OFFICE,
     "Create an auto-tag rule {name, trigger (channel|group_join|keyword|event_count|stage), "
     "params, tag_ids, enabled}",
     0, NULL, &kind},
    {"GET", "/api/v1/tag-rules/{id}", api_json_get, ROLES_OFFICE, "One auto-tag rule", 0, NULL,
     &kind},
    {"PUT", "/api/v1/tag-rules/{id}", api_json_replace, ROLES_OFFICE,
     "Replace an auto-tag rule (same body as POST)", 0, NULL, &kind},
    {"DELETE", "/api/v1/tag-rules/{id}", api_json_delete, ROLES_OFFICE, "Delete an auto-tag rule",
     0, NULL, &kind},
    {NULL, NULL, NULL, 0, NULL, 0},
};
