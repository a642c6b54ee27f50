/* o2ctl's values: send's arguments from text, and messages and properties as JSON. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "o2ctl.h"

static json_t *vector_json(const o2h_vector *v) {
    json_t *arr = json_array();
    for (int32_t k = 0; k < v->len; k++) {
        switch (v->type) {
        case 'i': json_array_append_new(arr, json_integer(((const int32_t *)v->data)[k])); break;
        case 'h': json_array_append_new(arr, json_integer(((const int64_t *)v->data)[k])); break;
        case 'f': json_array_append_new(arr, json_real(((const float *)v->data)[k])); break;
        default: json_array_append_new(arr, json_real(((const double *)v->data)[k])); break;
        }
    }
    return arr;
}

static json_t *arg_json(char t, const o2h_arg *a) {
    char hex[3];
    switch (t) {
    case 'i': return json_integer(a->i);
    case 'h': return json_integer(a->h);
    case 'f': return json_real(a->f);
    case 'd': return json_real(a->d);
    case 't': return json_real(a->t);
    case 's':
    case 'S': return json_string(a->s);
    case 'c': {
        char s[2] = {(char)a->c, 0};
        return json_string(s);
    }
    case 'm': return json_integer(a->m);
    case 'B': return json_boolean(a->B);
    case 'T': return json_true();
    case 'F': return json_false();
    case 'N': return json_null();
    case 'I': return json_string("inf");
    case 'b': {
        json_t *s = json_string("");
        char *text = malloc(2 * (size_t)a->b.size + 1);
        if (!text) return s;
        for (uint32_t k = 0; k < a->b.size; k++) {
            snprintf(hex, sizeof hex, "%02x", a->b.data[k]);
            memcpy(text + 2 * k, hex, 2);
        }
        text[2 * a->b.size] = '\0';
        json_string_set(s, text);
        free(text);
        return s;
    }
    default: return json_null();
    }
}

json_t *o2ctl_args_json(const o2h_msg *msg) {
    json_t *stack[O2H_MAX_BUNDLE_DEPTH * 4 + 1];
    int depth = 0;
    stack[0] = json_array();
    size_t scratch_size = 2u * msg->length + 64u;
    uint8_t *scratch = malloc(scratch_size);
    o2h_reader rd;
    if (!scratch || o2h_reader_init(&rd, msg, scratch, scratch_size) != O2H_OK) {
        free(scratch);
        return stack[0];
    }
    for (char t; (t = o2h_reader_peek(&rd)) != 0;) {
        o2h_arg a;
        memset(&a, 0, sizeof a);
        if (o2h_reader_next(&rd, t, &a) != O2H_OK) break;
        if (t == '[' && depth + 1 < (int)(sizeof stack / sizeof stack[0])) {
            stack[++depth] = json_array();
        } else if (t == ']' && depth > 0) {
            json_array_append_new(stack[depth - 1], stack[depth]);
            depth--;
        } else {
            json_array_append_new(stack[depth], t == 'v' ? vector_json(&a.v) : arg_json(t, &a));
        }
    }
    while (depth > 0) {
        json_array_append_new(stack[depth - 1], stack[depth]);
        depth--;
    }
    free(scratch);
    return stack[0];
}

static int hexval(int c) {
    return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

static bool parse_number(const char *text, bool integer, int64_t *i, double *d) {
    char *end;
    errno = 0;
    if (integer) {
        *i = strtoll(text, &end, 0);
    } else {
        *d = strtod(text, &end);
    }
    return *text && !*end && errno == 0;
}

bool o2ctl_add_args(o2h_builder *b, const char *types, char **args, int n_args) {
    int k = 0;
    for (const char *t = types; *t; t++) {
        if (strchr("TFNI[]", *t)) {
            if (*t == 'T') o2h_add_true(b);
            if (*t == 'F') o2h_add_false(b);
            if (*t == 'N') o2h_add_nil(b);
            if (*t == 'I') o2h_add_infinitum(b);
            if (*t == '[') o2h_add_start_array(b);
            if (*t == ']') o2h_add_end_array(b);
            continue;
        }
        if (!strchr("ihfdtsScmBb", *t)) {
            fprintf(stderr, "o2ctl: type '%c' is not supported by send\n", *t);
            return false;
        }
        if (k >= n_args) {
            fprintf(stderr, "o2ctl: types \"%s\" need more arguments\n", types);
            return false;
        }
        const char *text = args[k++];
        int64_t i = 0;
        double d = 0;
        bool ok = true;
        switch (*t) {
        case 'i':
            ok = parse_number(text, true, &i, &d) && i >= INT32_MIN && i <= INT32_MAX;
            if (ok) o2h_add_int32(b, (int32_t)i);
            break;
        case 'h':
            ok = parse_number(text, true, &i, &d);
            if (ok) o2h_add_int64(b, i);
            break;
        case 'm':
            ok = parse_number(text, true, &i, &d) && i >= 0 && i <= UINT32_MAX;
            if (ok) o2h_add_midi(b, (uint32_t)i);
            break;
        case 'f':
            ok = parse_number(text, false, &i, &d);
            if (ok) o2h_add_float(b, (float)d);
            break;
        case 'd':
            ok = parse_number(text, false, &i, &d);
            if (ok) o2h_add_double(b, d);
            break;
        case 't':
            ok = parse_number(text, false, &i, &d);
            if (ok) o2h_add_time(b, d);
            break;
        case 's': o2h_add_string(b, text); break;
        case 'S': o2h_add_symbol(b, text); break;
        case 'c':
            ok = strlen(text) == 1;
            if (ok) o2h_add_char(b, text[0]);
            break;
        case 'B':
            ok = strcmp(text, "true") == 0 || strcmp(text, "false") == 0 ||
                 strcmp(text, "1") == 0 || strcmp(text, "0") == 0;
            if (ok) o2h_add_bool(b, text[0] == 't' || text[0] == '1');
            break;
        case 'b': {
            const char *h = strncmp(text, "0x", 2) == 0 ? text + 2 : text;
            size_t len = strlen(h);
            ok = len % 2 == 0;
            uint8_t *bytes = malloc(len / 2 + 1);
            for (size_t j = 0; ok && bytes && j < len / 2; j++) {
                int hi = hexval((unsigned char)h[2 * j]), lo = hexval((unsigned char)h[2 * j + 1]);
                ok = hi >= 0 && lo >= 0;
                bytes[j] = (uint8_t)(hi * 16 + lo);
            }
            if (ok && bytes) o2h_add_blob(b, bytes, (uint32_t)(len / 2));
            free(bytes);
            break;
        }
        default: break;
        }
        if (!ok) {
            fprintf(stderr, "o2ctl: \"%s\" is not a valid '%c' argument\n", text, *t);
            return false;
        }
    }
    if (k < n_args) {
        fprintf(stderr, "o2ctl: %d argument(s) more than types \"%s\" take\n", n_args - k, types);
        return false;
    }
    return true;
}

json_t *o2ctl_properties_json(const char *props) {
    json_t *obj = json_object();
    const char *p = props ? props : "";
    while (*p) {
        const char *colon = strchr(p, ':');
        if (!colon) break;
        char *key = strndup(p, (size_t)(colon - p));
        char *value = malloc(strlen(colon) + 1), *v = value;
        const char *s = colon + 1;
        for (; *s && *s != ';'; s++) {
            if (*s == '\\' && s[1]) s++;
            *v++ = *s;
        }
        *v = '\0';
        if (key && value) json_object_set_new(obj, key, json_string(value));
        free(key);
        free(value);
        p = *s ? s + 1 : s;
    }
    return obj;
}
