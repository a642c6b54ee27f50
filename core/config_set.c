/*
 * Config overrides ("KEY.PATH=VALUE", o2hub's --set): a value replaced or
 * added in the parsed document before the router reads it, so one file
 * serves with other ports or addresses (a test, a second instance) without
 * being copied.
 *
 * A path is the one errors print ("transports[2].port"), and inside
 * "transports", "discovery" and "plugins" an entry may also be named by its
 * type ("transports.websocket.port") when exactly one entry has that type.
 * VALUE is JSON ("0", "true", "[1,2]", "\"x\""); text that is not JSON is
 * taken as a string ("127.0.0.1").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* The entry of array `arr` whose "type" is `type` (exactly one), or -1 with *why set. */
static long index_by_type(const json_t *arr, const char *type, char *why, size_t why_size) {
    long found = -1;
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item) {
        const char *t = json_string_value(json_object_get(item, "type"));
        if (!t || strcmp(t, type) != 0) continue;
        if (found >= 0) {
            snprintf(why, why_size,
                     "two entries have type \"%s\": name one by index ([%ld], [%zu])", type, found,
                     i);
            return -1;
        }
        found = (long)i;
    }
    if (found < 0) snprintf(why, why_size, "no entry has type \"%s\"", type);
    return found;
}

static void append_key(char *out, size_t size, const char *key) {
    size_t used = strlen(out);
    if (used < size) snprintf(out + used, size - used, "%s%s", used ? "." : "", key);
}

static void append_index(char *out, size_t size, long index) {
    size_t used = strlen(out);
    if (used < size) snprintf(out + used, size - used, "[%ld]", index);
}

int o2h__config_set_json(json_t *root, const char *assignment, char *path_out, size_t path_size,
                         char *why, size_t why_size) {
    path_out[0] = '\0';
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        snprintf(why, why_size, "expected KEY=VALUE, as transports.websocket.port=0");
        return O2H_BAD_ARGS;
    }
    json_t *value = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
    if (!value) value = json_string(eq + 1);
    if (!value) {
        snprintf(why, why_size, "out of memory");
        return O2H_NO_MEMORY;
    }
    json_t *at = root;
    const char *p = assignment;
    char key[128];
    int rc = O2H_OK;
    while (p < eq && rc == O2H_OK) {
        if (*p == '.') p++;
        long index = -1;
        if (*p == '[') {
            char *end;
            index = strtol(p + 1, &end, 10);
            if (end > eq || *end != ']' || index < 0) {
                snprintf(why, why_size, "bad index in \"%.*s\"", (int)(eq - assignment),
                         assignment);
                rc = O2H_BAD_ARGS;
                break;
            }
            p = end + 1;
        } else {
            size_t len = strcspn(p, ".[=");
            if (p + len > eq) len = (size_t)(eq - p);
            if (len == 0 || len >= sizeof key) {
                snprintf(why, why_size, "bad key in \"%.*s\"", (int)(eq - assignment), assignment);
                rc = O2H_BAD_ARGS;
                break;
            }
            memcpy(key, p, len);
            key[len] = '\0';
            p += len;
            if (json_is_array(at)) {
                index = index_by_type(at, key, why, why_size);
                if (index < 0) rc = O2H_BAD_ARGS;
            }
        }
        if (rc != O2H_OK) break;
        bool last = p >= eq;
        if (index >= 0) {
            if (!json_is_array(at) || (size_t)index >= json_array_size(at)) {
                snprintf(why, why_size, "%s has no entry [%ld]",
                         path_out[0] ? path_out : "the root", index);
                rc = O2H_BAD_ARGS;
                break;
            }
            append_index(path_out, path_size, index);
            if (last) {
                json_array_set(at, (size_t)index, value);
            } else {
                at = json_array_get(at, (size_t)index);
            }
            continue;
        }
        if (!json_is_object(at)) {
            snprintf(why, why_size, "%s is not an object", path_out[0] ? path_out : "the root");
            rc = O2H_BAD_ARGS;
            break;
        }
        append_key(path_out, path_size, key);
        if (last) {
            json_object_set(at, key, value);
        } else if (!(at = json_object_get(at, key))) {
            snprintf(why, why_size, "%s is not in the config", path_out);
            rc = O2H_BAD_ARGS;
        }
    }
    json_decref(value);
    return rc;
}
