#include "names.h"

#include <ctype.h>
#include <string.h>

bool o2h__names_valid_ensemble(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > O2H_MAX_NAME_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 0x7f || c == '/') return false;
    }
    return true;
}

bool o2h__names_is_ip_hex(const char *s) {
    for (int i = 0; i < 8; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return s[8] == '\0';
}

bool o2h__names_has_pattern(const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '*':
        case '?':
        case '[':
        case ']':
        case '{':
        case '}': return true;
        default: break;
        }
    }
    return false;
}

bool o2h__names_valid_service(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > O2H_MAX_NAME_LEN) return false;
    /* O2 requires a letter first; '@' (process names) and '_' (system
     * services such as _o2 and _cs) are reserved for the core. */
    if (!isalpha((unsigned char)name[0])) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 0x7f || c == '/') return false;
    }
    return !o2h__names_has_pattern(name);
}

bool o2h__names_service_of(const char *address, const char **start, size_t *len) {
    if (!address || (address[0] != '/' && address[0] != '!' && address[0] != '#')) return false;
    const char *s = address + 1;
    size_t n = strcspn(s, "/");
    if (n == 0 || n > O2H_MAX_NAME_LEN) return false;
    *start = s;
    *len = n;
    return true;
}
