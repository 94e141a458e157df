/* resolve_net.c: the default network seams of the resolver: HTTP GET with libcurl (address
 * check on every socket it opens, so redirects and DNS rebinding between check and connect are
 * covered) and DNS TXT with res_query. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <string.h>
#include <sys/socket.h>

#include "atp/resolve.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool v4_is_public(uint32_t a)
{
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
    return !(b0 == 0 || b0 == 10 || b0 == 127 || b0 >= 224 || (b0 == 169 && b1 == 254) ||
             (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
             (b0 == 100 && (b1 & 0xc0) == 64) || (b0 == 192 && b1 == 0 && (a >> 8 & 0xff) == 0) ||
             (b0 == 198 && (b1 & 0xfe) == 18));
}

static bool v6_is_public(const uint8_t *p)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t zero[16] = {0};
    if (memcmp(p, mapped, 12) == 0) {
        return v4_is_public((uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 |
                            p[15]);
    }
    if (memcmp(p, zero, 15) == 0) { /* :: and ::1 */
        return false;
    }
    return !((p[0] & 0xfe) == 0xfc || (p[0] == 0xfe && (p[1] & 0xc0) == 0x80) || p[0] == 0xff ||
             (p[0] == 0x20 && p[1] == 0x01 && p[2] == 0x0d && p[3] == 0xb8) ||
             (p[0] == 0x00 && p[1] == 0x64 && p[2] == 0xff && p[3] == 0x9b)); /* NAT64 */
}

bool atp_resolve_addr_is_public(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        return v4_is_public(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        return v6_is_public(in6.sin6_addr.s6_addr);
    }
    return false;
}

typedef struct fetch_ctx {
    atp_buf *body;
    size_t max;
    size_t got;
    bool too_big, refused;
} fetch_ctx;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    fetch_ctx *c = ud;
    size_t n = size * nmemb;
    if (c->got + n > c->max) {
        c->too_big = true;
        return 0; /* aborts the transfer */
    }
    atp_buf_append(c->body, ptr, n);
    c->got += n;
    return c->body->err ? 0 : n;
}

/* Every connection libcurl makes goes through here: refuse non-public peers before connect. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    fetch_ctx *c = ud;
    (void)purpose;
    if (!atp_resolve_addr_is_public(&addr->addr)) {
        c->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

static void setup_curl(CURL *h, const atp_fetch_req *req, fetch_ctx *c, struct curl_slist *hdr)
{
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, (req->flags & ATP_FETCH_FOLLOW) ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "atproto-c");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (!(req->flags & (ATP_FETCH_TRUSTED | ATP_FETCH_LOCAL))) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    }
}

static int fetch_result(CURLcode rc, const fetch_ctx *c, atp_err *err)
{
    if (c->refused) {
        return atp_err_set(err, ATP_EFORBIDDEN, 0, "fetch: refused a non-public address");
    }
    if (c->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        return atp_err_set(err, ATP_ELIMIT, 0, "fetch: response larger than %zu bytes", c->max);
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        return atp_err_set(err, ATP_EINVAL, 0, "fetch: %s", curl_easy_strerror(rc));
    }
    return atp_err_set(err, ATP_EIO, 0, "fetch: %s", curl_easy_strerror(rc));
}

int atp_fetch_default(void *ud, const atp_fetch_req *req, int *status, atp_buf *body, atp_err *err)
{
    (void)ud;
    pthread_once(&curl_once, curl_init_once);
    CURL *h = curl_easy_init();
    if (!h) {
        return atp_err_set(err, ATP_EINTERNAL, 0, "fetch: curl_easy_init failed");
    }
    fetch_ctx c = {body, req->max_body, 0, false, false};
    char accept[256];
    struct curl_slist *hdr = NULL;
    if (req->accept) {
        snprintf(accept, sizeof(accept), "Accept: %s", req->accept);
        hdr = curl_slist_append(hdr, accept);
    }
    setup_curl(h, req, &c, hdr);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        return fetch_result(rc, &c, err);
    }
    *status = (int)code;
    return 0;
}

/* ---- DNS TXT ---- */

static int txt_records(const uint8_t *msg, int len, atp_buf *out, atp_err *err)
{
    ns_msg h;
    if (ns_initparse(msg, len, &h) < 0) {
        return atp_err_set(err, ATP_EIO, 0, "dns: malformed answer");
    }
    int n = ns_msg_count(h, ns_s_an);
    for (int i = 0; i < n; i++) {
        ns_rr rr;
        if (ns_parserr(&h, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_txt) {
            continue;
        }
        const uint8_t *p = ns_rr_rdata(rr);
        size_t left = ns_rr_rdlen(rr);
        while (left > 0) { /* character-strings: length byte then bytes, joined */
            size_t l = p[0];
            if (l + 1 > left) {
                break;
            }
            atp_buf_append(out, p + 1, l);
            p += l + 1;
            left -= l + 1;
        }
        atp_buf_append_byte(out, 0);
    }
    return out->err ? atp_err_set(err, ATP_ELIMIT, 0, "dns: answer too large") : 0;
}

int atp_txt_default(void *ud, const char *name, unsigned timeout_ms, atp_buf *out, atp_err *err)
{
    struct __res_state st;
    uint8_t ans[8192];
    (void)ud;
    memset(&st, 0, sizeof(st));
    if (res_ninit(&st) != 0) {
        return atp_err_set(err, ATP_EIO, 0, "dns: res_ninit failed");
    }
    st.retrans = (int)(timeout_ms / 1000 ? timeout_ms / 1000 : 1);
    st.retry = 1;
    int len = res_nquery(&st, name, ns_c_in, ns_t_txt, ans, sizeof(ans));
    int herr = st.res_h_errno;
    res_nclose(&st);
    if (len < 0) {
        return herr == HOST_NOT_FOUND || herr == NO_DATA
                   ? atp_err_set(err, ATP_ENOTFOUND, 0, "dns: no TXT record for %s", name)
                   : atp_err_set(err, ATP_EIO, 0, "dns: lookup of %s failed", name);
    }
    return txt_records(ans, len < (int)sizeof(ans) ? len : (int)sizeof(ans), out, err);
}
