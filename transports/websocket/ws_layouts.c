/*
 * GET and PUT /layouts/NAME.json: the control-surface designer's layouts
 * (examples/surfaces, docs/surfaces.md), JSON files inside the configured
 * "layouts" folder, and GET /layouts/ lists their names. A name is
 * [A-Za-z0-9_-]{1,64}; a body is a JSON object of at most
 * "layouts_max_bytes"; "layouts_read_only" refuses every PUT. The Origin
 * and token rules are those of /stats (ws_access.c), refusals 403.
 *
 * A PUT's body reaches on_request in several calls (MHD's upload_data): it
 * is gathered in a layout_req (MHD's req_cls) and written on the last call,
 * to a temporary file then renamed over the old one, so a reader never sees
 * half a layout. With "mhd_thread" all of this runs on MHD's thread: it
 * touches only the folder's descriptor (fixed before MHD starts) and the
 * request's own memory, never the host or the router's state, and its log
 * lines go through o2h_ws_log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ws_internal.h"

#define LAYOUTS_PREFIX "/layouts/"
#define LAYOUT_NAME_MAX 64
#define LAYOUTS_LIST_MAX 1024
#define HTTP_TOO_LARGE 413

struct layout_req {
    int kind; /* WS_REQ_LAYOUT, first as in every typed req_cls */
    char *body;
    size_t len, cap;
    bool too_big;
};

int o2h_ws_read_layouts(ws_transport *tr, const o2h_cfg *cfg) {
    const o2h_host *h = tr->host;
    const char *dir = NULL;
    tr->layouts_fd = -1;
    if (h->cfg->get_string(cfg, "layouts", NULL, &dir) == O2H_CONFIG_ERROR ||
        h->cfg->get_int(cfg, "layouts_max_bytes", 256 * 1024, 64, 16 << 20, &tr->layouts_max) ==
            O2H_CONFIG_ERROR ||
        h->cfg->get_bool(cfg, "layouts_read_only", false, &tr->layouts_read_only) ==
            O2H_CONFIG_ERROR)
        return O2H_CONFIG_ERROR;
    if (!dir) return O2H_OK;
    const char *base = h->cfg->dir(cfg);
    size_t n = strlen(base) + strlen(dir) + 2;
    if (!(tr->layouts_dir = malloc(n))) return O2H_NO_MEMORY;
    if (dir[0] == '/')
        snprintf(tr->layouts_dir, n, "%s", dir);
    else
        snprintf(tr->layouts_dir, n, "%s/%s", base, dir);
    struct stat st;
    if (stat(tr->layouts_dir, &st) != 0)
        return h->cfg->error(cfg, "layouts", "folder %s: %s", tr->layouts_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return h->cfg->error(cfg, "layouts", "%s is not a folder", tr->layouts_dir);
    return O2H_OK;
}

/* A folder this user cannot write (an installed example's, owned by root)
 * serves its layouts read-only, and says so once, instead of failing every
 * Save with a 500. */
static void warn_if_unwritable(ws_transport *tr) {
    if (tr->layouts_read_only || faccessat(tr->layouts_fd, ".", W_OK, AT_EACCESS) == 0) return;
    tr->host->log->write(tr->self, O2H_LOG_WARN,
                         "layouts folder %s is not writable (%s): layouts are served read-only; "
                         "point \"layouts\" at a folder of your own to save them",
                         tr->layouts_dir, strerror(errno));
    tr->layouts_read_only = true;
}

int o2h_ws_layouts_start(ws_transport *tr) {
    if (!tr->layouts_dir) return O2H_OK;
    tr->layouts_fd = open(tr->layouts_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tr->layouts_fd >= 0) {
        warn_if_unwritable(tr);
        return O2H_OK;
    }
    tr->host->log->write(tr->self, O2H_LOG_ERROR, "cannot open the layouts folder %s: %s",
                         tr->layouts_dir, strerror(errno));
    return O2H_BAD_ARGS;
}

void o2h_ws_layouts_stop(ws_transport *tr) {
    if (tr->layouts_fd >= 0) close(tr->layouts_fd);
    tr->layouts_fd = -1;
}

void o2h_ws_free_layouts(ws_transport *tr) {
    free(tr->layouts_dir);
    tr->layouts_dir = NULL;
}

bool o2h_ws_is_layouts_url(const ws_transport *tr, const char *url) {
    return tr->layouts_dir && (strncmp(url, LAYOUTS_PREFIX, strlen(LAYOUTS_PREFIX)) == 0 ||
                               strcmp(url, "/layouts") == 0);
}

bool o2h_ws_is_layout_req(const void *req_cls) {
    return req_cls && *(const int *)req_cls == WS_REQ_LAYOUT;
}

void o2h_ws_layout_req_free(void *req_cls) {
    struct layout_req *q = req_cls;
    free(q->body);
    free(q);
}

/* "NAME.json" below the prefix into `file`: 200, 403 (a path: "..", "/",
 * a %-escape) or 400 (any other bad name); "" (the list) is 200 too. */
static int layout_file(const char *url, char file[LAYOUT_NAME_MAX + 6]) {
    file[0] = '\0';
    if (strcmp(url, "/layouts") == 0 || strcmp(url, LAYOUTS_PREFIX) == 0) return 200;
    const char *name = url + strlen(LAYOUTS_PREFIX);
    if (strstr(name, "..") || strchr(name, '/') || strchr(name, '%') || strchr(name, '\\'))
        return 403;
    size_t n = strlen(name);
    if (n <= 5 || strcmp(name + n - 5, ".json") != 0 || n - 5 > LAYOUT_NAME_MAX) return 400;
    for (size_t i = 0; i < n - 5; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 400;
    }
    memcpy(file, name, n + 1);
    return 200;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *t) {
    char *body = strdup(t);
    return body ? o2h_ws_respond(conn, status, "text/plain; charset=utf-8", body, strlen(body))
                : MHD_NO;
}

/* Who may not use the layouts (NULL: may), logged as a refusal. */
static const char *refusal(ws_transport *tr, struct MHD_Connection *conn, const char *method,
                           const char *url) {
    int status;
    char what[300];
    const char *why = o2h_ws_http_refusal(tr, conn, method, url, &status, what, sizeof what);
    if (!why) return NULL;
    if (tr->mhd_thread)
        o2h_ws_log(tr, O2H_LOG_WARN, "refused %s", what); /* no host call here */
    else
        tr->host->proc->refused(tr->self, what);
    return why;
}

static enum MHD_Result list_layouts(ws_transport *tr, struct MHD_Connection *conn) {
    int fd = dup(tr->layouts_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Cannot read the folder.\n");
    }
    rewinddir(d);
    json_t *names = json_array();
    struct dirent *e;
    int count = 0;
    while (names && (e = readdir(d)) && count < LAYOUTS_LIST_MAX) {
        char file[LAYOUT_NAME_MAX + 6], url[LAYOUT_NAME_MAX + 32];
        snprintf(url, sizeof url, LAYOUTS_PREFIX "%.*s", LAYOUT_NAME_MAX + 6, e->d_name);
        if (strlen(e->d_name) > LAYOUT_NAME_MAX + 5 || layout_file(url, file) != 200 || !file[0])
            continue;
        struct stat st; /* d_type is DT_UNKNOWN on some file systems */
        if (e->d_type != DT_REG &&
            (e->d_type != DT_UNKNOWN ||
             fstatat(tr->layouts_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
             !S_ISREG(st.st_mode)))
            continue;
        file[strlen(file) - 5] = '\0';
        json_array_append_new(names, json_string(file));
        count++;
    }
    closedir(d);
    char *text = names ? json_dumps(names, JSON_COMPACT) : NULL;
    json_decref(names);
    if (!text) return MHD_NO;
    return o2h_ws_respond(conn, MHD_HTTP_OK, "application/json", text, strlen(text));
}

static enum MHD_Result get_layout(ws_transport *tr, struct MHD_Connection *conn, const char *file) {
    int fd = openat(tr->layouts_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        return respond_text(conn, errno == ENOENT ? MHD_HTTP_NOT_FOUND : MHD_HTTP_FORBIDDEN,
                            errno == ENOENT ? "No such layout.\n" : "Forbidden.\n");
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return respond_text(conn, MHD_HTTP_FORBIDDEN, "Forbidden.\n");
    }
    struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* The whole body to `file`, through a temporary file renamed over it. */
static int write_layout(ws_transport *tr, const char *file, const char *body, size_t len) {
    char tmp[LAYOUT_NAME_MAX + 40];
    unsigned seq = atomic_fetch_add(&tr->layouts_seq, 1);
    snprintf(tmp, sizeof tmp, ".%s.%ld.%u.tmp", file, (long)getpid(), seq);
    int fd =
        openat(tr->layouts_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, body + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
    }
    int ok = off == len && fsync(fd) == 0;
    if (close(fd) != 0) ok = 0;
    if (ok && renameat(tr->layouts_fd, tmp, tr->layouts_fd, file) == 0) return 0;
    int err = errno;
    unlinkat(tr->layouts_fd, tmp, 0);
    errno = err;
    return -1;
}

static enum MHD_Result put_layout(ws_transport *tr, struct MHD_Connection *conn, const char *file,
                                  struct layout_req *q) {
    if (q->too_big) return respond_text(conn, HTTP_TOO_LARGE, "Layout too large.\n");
    json_error_t err;
    json_t *doc = json_loadb(q->body ? q->body : "", q->len, JSON_REJECT_DUPLICATES, &err);
    bool object = json_is_object(doc);
    json_decref(doc);
    if (!object) {
        char text[300];
        snprintf(text, sizeof text, "A layout is a JSON object%s%.200s.\n", doc ? "" : ": ",
                 doc ? "" : err.text);
        return respond_text(conn, MHD_HTTP_BAD_REQUEST, text);
    }
    if (write_layout(tr, file, q->body, q->len) != 0) {
        o2h_ws_log(tr, O2H_LOG_ERROR, "cannot write layout %s in %s: %s", file, tr->layouts_dir,
                   strerror(errno));
        return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Cannot write the layout.\n");
    }
    o2h_ws_log(tr, O2H_LOG_INFO, "saved layout %s (%zu bytes)", file, q->len);
    return respond_text(conn, MHD_HTTP_OK, "Saved.\n");
}

/* The first call (headers only): a PUT that is refused is answered now,
 * before its body is read (MHD then closes the connection). */
enum MHD_Result o2h_ws_layouts_begin(ws_transport *tr, struct MHD_Connection *conn, const char *url,
                                     const char *method, void **req_cls) {
    struct layout_req *q = calloc(1, sizeof *q);
    if (!q) return MHD_NO;
    q->kind = WS_REQ_LAYOUT;
    *req_cls = q;
    if (strcmp(method, MHD_HTTP_METHOD_PUT) != 0) return MHD_YES;
    char file[LAYOUT_NAME_MAX + 6];
    int status = layout_file(url, file);
    if (status != 200 || !file[0])
        return respond_text(conn, status == 200 ? MHD_HTTP_METHOD_NOT_ALLOWED : (unsigned)status,
                            status == 403 ? "Forbidden layout name.\n"
                                          : "A layout name is [A-Za-z0-9_-]{1,64}.json.\n");
    const char *why = refusal(tr, conn, method, url);
    if (why) return respond_text(conn, MHD_HTTP_FORBIDDEN, why);
    if (tr->layouts_read_only)
        return respond_text(conn, MHD_HTTP_FORBIDDEN, "The layouts are read-only here.\n");
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > (unsigned long long)tr->layouts_max)
        return respond_text(conn, HTTP_TOO_LARGE, "Layout too large.\n");
    return MHD_YES;
}

/* The later calls: a piece of a PUT's body, or (size 0) the whole request. */
enum MHD_Result o2h_ws_layouts_request(ws_transport *tr, struct MHD_Connection *conn,
                                       const char *url, const char *method, const char *upload_data,
                                       size_t *upload_data_size, void *req_cls) {
    struct layout_req *q = req_cls;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->too_big || q->len + n > (size_t)tr->layouts_max) {
            q->too_big = true; /* the rest is read and dropped (chunked bodies) */
            return MHD_YES;
        }
        if (q->len + n > q->cap) {
            size_t cap = q->cap ? q->cap : 4096;
            while (cap < q->len + n)
                cap *= 2;
            char *b = realloc(q->body, cap);
            if (!b) return MHD_NO;
            q->body = b;
            q->cap = cap;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        return MHD_YES;
    }
    o2h_ws_request_in(tr, conn, false);
    bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
    if (!put && strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const char only[] = "GET, HEAD or PUT only.\n";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof only - 1, (void *)only, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        o2h_ws_uncached(r, "text/plain; charset=utf-8");
        MHD_add_response_header(r, "Allow", "GET, HEAD, PUT");
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return ret;
    }
    char file[LAYOUT_NAME_MAX + 6];
    int status = layout_file(url, file);
    if (status != 200)
        return respond_text(conn, (unsigned)status,
                            status == 403 ? "Forbidden layout name.\n"
                                          : "A layout name is [A-Za-z0-9_-]{1,64}.json.\n");
    const char *why = put ? NULL : refusal(tr, conn, method, url); /* a PUT's was checked first */
    if (why) return respond_text(conn, MHD_HTTP_FORBIDDEN, why);
    if (put) return put_layout(tr, conn, file, q);
    return file[0] ? get_layout(tr, conn, file) : list_layouts(tr, conn);
}
