/*
 * O2lite client library: message encoding byte for byte against O2's wire
 * format (O2's message format), the argument reader, method dispatch, and
 * malformed input (dropped and counted, never read out of bounds). No
 * network: messages are built with o2l_send_start/o2l_add_* and read with
 * o2l_message_bytes, and fed in with o2l_dispatch. Criterion runs each test
 * in its own process, so the library's static state starts fresh each time.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "o2lite.h"

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        cr_assert_eq(sscanf(p, "%2x", &v), 1);
        cr_assert_lt(n, cap);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

/* The message built so far must equal the hex text (spaces ignored). */
static void assert_built(const char *hex) {
    uint8_t want[1024];
    size_t n = unhex(hex, want, sizeof want), len;
    const uint8_t *got = o2l_message_bytes(&len);
    cr_assert_eq(len, n, "length %zu, want %zu", len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "byte %zu: %02x, want %02x", i, got[i], want[i]);
}

Test(o2lite, reference_example_ifs_reliable_at_2) {
    /* O2 2.0.1's bytes for o2_send_cmd("/s/a", 2.0, "ifs", 1, 1.5f, "hi"). */
    o2l_send_start("/s/a", 2.0, "ifs", true);
    o2l_add_int32(1);
    o2l_add_float(1.5f);
    o2l_add_string("hi");
    assert_built("00000001 4000000000000000 2f732f61 00000000 2c696673 00000000"
                 "00000001 3fc00000 68690000");
    size_t len;
    const uint8_t *m = o2l_message_bytes(&len);
    /* the TCP length prefix sits just before the message, network order */
    cr_assert_eq(memcmp(m - 4, "\x00\x00\x00\x28", 4), 0);
    cr_assert_not(o2l_get_error());
}

Test(o2lite, reference_example_dhtS_udp) {
    o2l_send_start("!s/b", 0, "dhtS", false);
    o2l_add_double(1.5);
    o2l_add_int64(-2);
    o2l_add_time(3.25);
    o2l_add_symbol("sym");
    assert_built("00000000 0000000000000000 21732f62 00000000 2c646874 53000000"
                 "3ff8000000000000 fffffffffffffffe 400a000000000000 73796d00");
}

Test(o2lite, types_from_the_add_calls_give_the_same_bytes) {
    o2l_send_start("/s/a", 2.0, NULL, true);
    o2l_add_int32(1);
    o2l_add_float(1.5f);
    o2l_add_string("hi");
    assert_built("00000001 4000000000000000 2f732f61 00000000 2c696673 00000000"
                 "00000001 3fc00000 68690000");
    o2l_send_start("/x", 0, NULL, false); /* no arguments: ",\0\0\0" */
    assert_built("00000000 0000000000000000 2f780000 2c000000");
}

Test(o2lite, string_and_address_padding) {
    o2l_send_start("/abc", 0, "sssi", false); /* address of 4 chars needs 4 more bytes */
    o2l_add_string("");
    o2l_add_string("abc");
    o2l_add_string("abcd");
    o2l_add_int32(-1);
    assert_built("00000000 0000000000000000 2f616263 00000000 2c737373 69000000"
                 "00000000 61626300 61626364 00000000 ffffffff");
}

Test(o2lite, blobs_bools_chars_midi) {
    o2l_send_start("/b", 0, "bbBBcm", false);
    o2l_add_blob_data(5, "\x01\x02\x03\x04\x05");
    char space[sizeof(o2l_blob) + 4];
    o2l_blob *blob = (o2l_blob *)space;
    blob->size = 4;
    memcpy(blob->data, "\xaa\xbb\xcc\xdd", 4);
    o2l_add_blob(blob);
    o2l_add_bool(true);
    o2l_add_bool(false);
    o2l_add_char('A');
    o2l_add_midi(0x00903c7f);
    /* O2 pads a blob to 4 (none when size % 4 == 0), unlike O2's o2lite (C4) */
    assert_built("00000000 0000000000000000 2f620000 2c626242 42636d00"
                 "00000005 01020304 05000000 00000004 aabbccdd 00000001 00000000"
                 "00000041 00903c7f");
}

Test(o2lite, o2lite_protocol_messages) {
    o2l_send_start("!_o2/o2lite/con", 0, "si", true);
    o2l_add_string("7f000001");
    o2l_add_int32(0xc351);
    assert_built("00000001 0000000000000000 215f6f32 2f6f326c 6974652f 636f6e00"
                 "2c736900 37663030 30303031 00000000 0000c351");
    o2l_send_start("!_o2/o2lite/sv", 0, "siisi", true);
    o2l_add_string("imu");
    o2l_add_int32(1);
    o2l_add_int32(1);
    o2l_add_string("");
    o2l_add_int32(0);
    assert_built("00000001 0000000000000000 215f6f32 2f6f326c 6974652f 73760000"
                 "2c736969 73690000 696d7500 00000001 00000001 00000000 00000000");
}

Test(o2lite, builder_refuses_wrong_or_missing_arguments) {
    size_t len;
    o2l_send_start("/a", 0, "if", false);
    o2l_add_float(1); /* 'f' where 'i' is due */
    cr_assert(o2l_get_error());
    o2l_message_bytes(&len);
    cr_assert_eq(len, 0);
    cr_assert_eq(o2l_send(), O2L_FAIL);

    o2l_send_start("/a", 0, "if", false);
    cr_assert_not(o2l_get_error(), "a new message clears the error");
    o2l_add_int32(1); /* the float is missing */
    o2l_message_bytes(&len);
    cr_assert_eq(len, 0);

    o2l_send_start("/a", 0, "i", false);
    o2l_add_int32(1);
    o2l_add_int32(2); /* one too many */
    cr_assert(o2l_get_error());
}

Test(o2lite, builder_stops_at_the_buffer_end) {
    static char big[O2L_MAX_MSG_LEN];
    memset(big, 'x', sizeof big - 1);
    size_t len;
    o2l_send_start("/a", 0, "s", false);
    o2l_add_string(big);
    cr_assert(o2l_get_error());
    o2l_message_bytes(&len);
    cr_assert_eq(len, 0);
    o2l_send_start(big, 0, "i", false); /* an address that cannot fit */
    o2l_add_int32(1);
    cr_assert(o2l_get_error());
    o2l_send_start("/a", 0, NULL, false);
    for (int i = 0; i <= O2L_MAX_TYPES; i++)
        o2l_add_int32(i);
    cr_assert(o2l_get_error(), "more than O2L_MAX_TYPES arguments without a type string");
    cr_assert_eq(o2l_send(), O2L_FAIL, "not connected anyway");
}

/* ---- reader and dispatch ------------------------------------------------ */

static int calls;
static char last_types[64];
static const void *last_info;

static void record(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    (void)msg;
    (void)data;
    calls++;
    snprintf(last_types, sizeof last_types, "%s", types);
    last_info = info;
}

static void dispatch_hex(const char *hex) {
    uint8_t m[1024];
    size_t n = unhex(hex, m, sizeof m);
    o2l_dispatch(m, n);
}

static bool all_types_ok;

static void read_all_types(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    cr_assert_str_eq(msg->address, "/s/all");
    cr_assert_eq(msg->length, 100);
    cr_assert_str_eq(types, "ifsdhtBTFbcmS");
    cr_assert_eq(o2l_get_timestamp(), 2.0);
    cr_assert_eq(*(const uint8_t *)data, 0xff, "data points at the first argument");
    cr_assert_eq(o2l_get_int32(), -2);
    cr_assert_eq(o2l_get_float(), 1.5f);
    cr_assert_str_eq(o2l_get_string(), "hi");
    cr_assert_eq(o2l_get_double(), 1.5);
    cr_assert_eq(o2l_get_int64(), -2);
    cr_assert_eq(o2l_get_time(), 3.25);
    cr_assert(o2l_get_bool());
    cr_assert(o2l_get_bool(), "T");
    cr_assert_not(o2l_get_bool(), "F");
    o2l_blob_ptr b = o2l_get_blob();
    cr_assert_not_null(b);
    cr_assert_eq(b->size, 5);
    cr_assert_eq(memcmp(b->data, "\x01\x02\x03\x04\x05", 5), 0);
    cr_assert_eq(o2l_get_char(), 'A');
    cr_assert_eq(o2l_get_midi(), 0x00903c7fu);
    cr_assert_str_eq(o2l_get_symbol(), "sym");
    cr_assert_not(o2l_get_error());
    cr_assert_eq(o2l_get_int32(), 0, "past the end");
    cr_assert(o2l_get_error());
    all_types_ok = true;
}

Test(o2lite, reader_decodes_every_type) {
    cr_assert_eq(o2l_method_new("/s/all", "ifsdhtBTFbcmS", true, read_all_types, NULL),
                 O2L_SUCCESS);
    dispatch_hex("00000103 4000000000000000 2f732f61 6c6c0000 2c696673 64687442 54466263"
                 "6d530000 fffffffe 3fc00000 68690000 3ff8000000000000 fffffffffffffffe"
                 "400a000000000000 00000001 00000005 01020304 05000000 00000041 00903c7f"
                 "73796d00");
    cr_assert(all_types_ok);
    cr_assert_eq(o2l_dropped(), 0);
}

static void read_wrong_type(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    cr_assert_eq(o2l_get_float(), 0.0f, "an 'i' is not read as a float");
    cr_assert(o2l_get_error());
    cr_assert_eq(o2l_get_int32(), 0, "after an error every read fails");
    calls++;
}

Test(o2lite, reader_refuses_a_wrong_type) {
    o2l_method_new("/s/a", NULL, true, read_wrong_type, NULL);
    dispatch_hex("00000000 0000000000000000 2f732f61 00000000 2c690000 00000007");
    cr_assert_eq(calls, 1);
}

Test(o2lite, dispatch_rules) {
    int a, b, c, d;
    o2l_method_new("/s", NULL, false, record, &b);  /* every /s/... (oldest: tried last) */
    o2l_method_new("/s/x", "i", true, record, &a);  /* exact, with types */
    o2l_method_new("!t/y", NULL, true, record, &c); /* first char is ignored */
    o2l_method_new("/s/x", "f", true, record, &d);  /* newest first, by types */
    dispatch_hex("00000000 0000000000000000 2f732f78 00000000 2c690000 00000001");
    cr_assert_eq(last_info, &a, "/s/x i");
    dispatch_hex("00000000 0000000000000000 21732f78 00000000 2c660000 3f800000");
    cr_assert_eq(last_info, &d, "!s/x f");
    dispatch_hex("00000000 0000000000000000 2f732f78 00000000 2c730000 61000000");
    cr_assert_eq(last_info, &b, "/s/x s falls to the /s prefix");
    dispatch_hex("00000000 0000000000000000 2f732f7a 2f710000 2c000000");
    cr_assert_eq(last_info, &b, "/s/z/q");
    dispatch_hex("00000000 0000000000000000 2f740000 2c000000");
    cr_assert_eq(o2l_dropped(), 1, "/t: no handler");
    dispatch_hex("00000000 0000000000000000 2f742f79 00000000 2c000000");
    cr_assert_eq(last_info, &c, "/t/y");
    dispatch_hex("00000000 0000000000000000 2f737800 2c000000");
    cr_assert_eq(o2l_dropped(), 2, "/sx is not under /s");
    cr_assert_eq(calls, 5);
    cr_assert_str_eq(last_types, "");
}

Test(o2lite, method_table_is_bounded) {
    for (int i = 0; i < O2L_MAX_METHODS; i++)
        cr_assert_eq(o2l_method_new("/a", NULL, true, record, NULL), O2L_SUCCESS);
    cr_assert_eq(o2l_method_new("/a", NULL, true, record, NULL), O2L_FAIL);
}

/* ---- malformed input ----------------------------------------------------- */

/* A valid message with every variable-length item; handler accepts any types. */
static const char *VALID = "00000000 0000000000000000 2f732f61 00000000 2c736269 00000000"
                           "68656c6c 6f000000 00000005 01020304 05000000 0000002a";

Test(o2lite, every_truncation_is_dropped) {
    o2l_method_new("/s", NULL, false, record, NULL);
    uint8_t m[256];
    size_t n = unhex(VALID, m, sizeof m);
    cr_assert(o2l_msg_valid(m, n));
    o2l_dispatch(m, n);
    cr_assert_eq(calls, 1);
    for (size_t len = 0; len < n; len++) {
        /* copy to a buffer of exactly len bytes so ASan sees any overread */
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, m, len);
        cr_assert_not(o2l_msg_valid(cut, len), "length %zu", len);
        o2l_dispatch(cut, len);
        free(cut);
    }
    cr_assert_eq(calls, 1);
    cr_assert_eq(o2l_dropped(), n);
}

Test(o2lite, malformed_messages_are_dropped) {
    o2l_method_new("/s", NULL, false, record, NULL);
    static const char *bad[] = {
        /* address not terminated before the end */
        "00000000 0000000000000000 2f732f61 2f612f61",
        /* type string not terminated */
        "00000000 0000000000000000 2f730000 2c696969",
        /* type string terminated, but its padding cut off */
        "00000000 0000000000000000 2f730000 2c5400",
        /* no ',' */
        "00000000 0000000000000000 2f730000 69000000 00000001",
        /* address not starting with / or ! (a bundle is not for o2lite) */
        "00000000 0000000000000000 23730000 2c000000",
        /* string argument unterminated */
        "00000000 0000000000000000 2f730000 2c730000 61626364",
        /* int missing */
        "00000000 0000000000000000 2f730000 2c690000",
        /* double cut short */
        "00000000 0000000000000000 2f730000 2c640000 00000000",
        /* blob larger than the message */
        "00000000 0000000000000000 2f730000 2c620000 00001000 01020304",
        /* blob size negative */
        "00000000 0000000000000000 2f730000 2c620000 ffffffff 01020304",
        /* unknown type code */
        "00000000 0000000000000000 2f730000 2c780000 00000000",
        /* vector with a byte count not a multiple of the element */
        "00000000 0000000000000000 2f730000 2c766900 00000003 00000001",
        /* vector longer than the message */
        "00000000 0000000000000000 2f730000 2c766900 00000010 00000001",
        /* vector of an unsupported element type */
        "00000000 0000000000000000 2f730000 2c767300 00000000",
        /* shorter than any message */
        "00000000 00000000 2f730000",
    };
    size_t n = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < n; i++)
        dispatch_hex(bad[i]);
    cr_assert_eq(calls, 0);
    cr_assert_eq(o2l_dropped(), n);
    /* a correct vector is accepted */
    dispatch_hex("00000000 0000000000000000 2f730000 2c766900 00000008 00000001 00000002");
    cr_assert_eq(calls, 1);
    cr_assert_str_eq(last_types, "vi");
    /* too long for the receive buffer */
    static uint8_t huge[O2L_MAX_MSG_LEN + 8];
    o2l_dispatch(huge, sizeof huge);
    cr_assert_eq(o2l_dropped(), n + 1);
}

static void read_too_much(o2l_msg_ptr msg, const char *types, void *data, void *info) {
    cr_assert_str_eq(o2l_get_string(), "hello");
    cr_assert_null(o2l_get_blob(), "next is 'b' but asked after the types ran out");
    calls++;
}

Test(o2lite, reader_stops_at_the_type_string) {
    o2l_method_new("/s", "s", false, read_too_much, NULL);
    dispatch_hex("00000000 0000000000000000 2f730000 2c730000 68656c6c 6f000000");
    cr_assert_eq(calls, 1);
}

Test(o2lite, random_mutations_never_crash) {
    o2l_method_new("/s", NULL, false, record, NULL);
    uint8_t m[256];
    size_t n = unhex(VALID, m, sizeof m);
    srand(12345);
    unsigned long accepted = 0;
    for (int round = 0; round < 20000; round++) {
        uint8_t *x = malloc(n);
        memcpy(x, m, n);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++)
            x[rand() % n] = (uint8_t)rand();
        size_t len = rand() % 8 ? n : (size_t)rand() % n;
        bool valid = o2l_msg_valid(x, len);
        int before = calls;
        o2l_dispatch(x, len);
        if (valid) accepted++;
        cr_assert_leq(calls - before, 1);
        free(x);
    }
    cr_assert_eq((unsigned long)calls + o2l_dropped(), 20000ul);
    cr_assert_gt(o2l_dropped(), 0ul);
    cr_assert_geq(accepted, (unsigned long)calls);
}

/* ---- discovery backends ---- */

typedef struct fake_backend {
    int polls, wanted, finished;
    bool last_want;
} fake_backend;

static void fake_poll(bool want_host, void *ctx) {
    fake_backend *f = ctx;
    f->polls++;
    f->wanted += want_host;
    f->last_want = want_host;
}

static void fake_finish(void *ctx) {
    ((fake_backend *)ctx)->finished++;
}

Test(o2lite, a_discovery_backend_is_polled_offers_hosts_and_is_finished) {
    fake_backend f = {0};
    o2l_discovery d = {.poll = fake_poll, .finish = fake_finish, .ctx = &f};
    cr_assert_eq(o2l_set_discovery(&d), O2L_FAIL, "not initialized");
    cr_assert_eq(o2l_offer_host(0x7f000001, 9, 9), O2L_FAIL, "not initialized");
    cr_assert_str_eq(o2l_ensemble_name(), "");
    cr_assert_eq(o2l_initialize("backend"), O2L_SUCCESS);
    cr_assert_str_eq(o2l_ensemble_name(), "backend");
    cr_assert_eq(o2l_set_discovery(&d), O2L_SUCCESS);
    o2l_poll();
    cr_assert_eq(f.polls, 1);
    cr_assert(f.last_want, "no host yet: the backend should look for one");
    /* Offers are checked like a !_o2/dy. */
    cr_assert_eq(o2l_offer_host(0, 9, 9), O2L_FAIL);
    cr_assert_eq(o2l_offer_host(0x7f000001, 0, 9), O2L_FAIL);
    cr_assert_eq(o2l_offer_host(0x7f000001, 9, 70000), O2L_FAIL);
    /* A good offer (a listening socket) starts connecting. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(l, 1), 0);
    socklen_t alen = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &alen);
    int port = ntohs(a.sin_port);
    cr_assert_eq(o2l_offer_host(0x7f000001, port, port), O2L_SUCCESS);
    cr_assert_eq(o2l_offer_host(0x7f000001, port, port), O2L_FAIL, "already has a host");
    o2l_poll();
    cr_assert_eq(f.polls, 2);
    cr_assert_eq(o2l_status(), O2L_CONNECTING);
    cr_assert_not(f.last_want, "connecting: nothing to look for");
    /* Replacing the backend finishes the old one; o2l_finish finishes the current one. */
    fake_backend g = {0};
    o2l_discovery e = {.poll = fake_poll, .finish = fake_finish, .ctx = &g};
    cr_assert_eq(o2l_set_discovery(&e), O2L_SUCCESS);
    cr_assert_eq(f.finished, 1);
    cr_assert_eq(o2l_finish(), O2L_SUCCESS);
    cr_assert_eq(g.finished, 1);
    cr_assert_eq(f.finished, 1);
    close(l);
}
