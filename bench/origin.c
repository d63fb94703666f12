/* bench/origin.c - a fast HTTP/1.1 origin for the benchmarks (loopback only).
 *
 *   origin PATTERN_FILE [WORKERS]
 *
 * Binds 127.0.0.1:0, prints "port N" on stdout, then serves until killed:
 *   GET  /bytes/N          N bytes of the repeating pattern (PATTERN_FILE's
 *                          contents, repeated), with Content-Length
 *   GET  /                 "ok\n"
 *   POST /upload           reads a Content-Length body, answers
 *                          {"sha256":"<hex>","len":N}
 *   POST /upload?nohash    same, but only counts (sha256 is "")
 * Keep-alive by default (HTTP/1.1), pipelining safe. One epoll loop per worker
 * process (SO_REUSEPORT when WORKERS > 1). Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define INBUF 16384
#define MAXSEND (1u << 20)

static unsigned char *pat;  /* pattern, followed by MAXSEND bytes of its start */
static size_t plen;

enum { S_HEAD, S_BODY, S_WRITE };

struct conn {
    int fd;
    int state;
    int close_after;
    int hashing;
    char in[INBUF];
    size_t inlen;
    uint64_t body_left;  /* S_BODY: bytes still to read */
    uint64_t body_len;
    EVP_MD_CTX *md;
    char head[512];
    size_t head_len, head_off;
    uint64_t out_left;   /* pattern bytes still to send */
    uint64_t out_pos;    /* offset in the pattern */
    int want_out;
};

static int ep;

static void set_events(struct conn *c, int out)
{
    if (c->want_out == out)
        return;
    /* While a response is pending, wait for writability only (back-pressure). */
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

static void conn_free(struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->md)
        EVP_MD_CTX_free(c->md);
    free(c);
}

static void respond(struct conn *c, int code, const char *ctype, const char *body,
                    uint64_t pattern_len)
{
    const char *reason = code == 200 ? "OK" : code == 404 ? "Not Found" : "Bad Request";
    uint64_t blen = body ? strlen(body) : pattern_len;
    int n = snprintf(c->head, sizeof c->head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %llu\r\n%s\r\n%s",
                     code, reason, ctype, (unsigned long long)blen,
                     c->close_after ? "Connection: close\r\n" : "", body ? body : "");
    c->head_len = (size_t)n < sizeof c->head ? (size_t)n : sizeof c->head - 1;
    c->head_off = 0;
    c->out_left = body ? 0 : pattern_len;
    c->out_pos = 0;
    c->state = S_WRITE;
}

static void finish_upload(struct conn *c)
{
    char body[200], hex[65] = "";
    if (c->hashing) {
        unsigned char d[32];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(c->md, d, &dl);
        for (unsigned i = 0; i < 32; i++)
            sprintf(hex + 2 * i, "%02x", d[i]);
    }
    snprintf(body, sizeof body, "{\"sha256\":\"%s\",\"len\":%llu}", hex,
             (unsigned long long)c->body_len);
    respond(c, 200, "application/json", body, 0);
}

/* Parse one request head from c->in; return 1 if handled, 0 if incomplete, -1 on error. */
static int parse_head(struct conn *c)
{
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end)
        return c->inlen >= INBUF ? -1 : 0;
    size_t hlen = (size_t)(end - c->in) + 4;
    *end = 0;
    char method[8] = "", path[256] = "", ver[16] = "";
    if (sscanf(c->in, "%7s %255s %15s", method, path, ver) != 3)
        return -1;
    uint64_t clen = 0;
    int conn_close = strcmp(ver, "HTTP/1.0") == 0, conn_ka = 0;
    for (char *line = strstr(c->in, "\r\n"); line && line < end; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoull(line + 15, NULL, 10);
        else if (strncasecmp(line, "Connection:", 11) == 0) {
            const char *v = line + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                conn_close = 1;
            else if (strncasecmp(v, "keep-alive", 10) == 0)
                conn_ka = 1;
        }
    }
    c->close_after = conn_close && !conn_ka;
    memmove(c->in, c->in + hlen, c->inlen - hlen);
    c->inlen -= hlen;
    if (strcmp(method, "POST") == 0 && strncmp(path, "/upload", 7) == 0) {
        c->hashing = strstr(path, "nohash") == NULL;
        if (c->hashing) {
            if (!c->md)
                c->md = EVP_MD_CTX_new();
            EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
        }
        c->body_len = clen;
        c->body_left = clen;
        c->state = S_BODY;
        return 1;
    }
    if (clen) /* a body we do not want: refuse */
        return -1;
    if (strcmp(method, "GET") == 0 && strncmp(path, "/bytes/", 7) == 0)
        respond(c, 200, "application/octet-stream", NULL, strtoull(path + 7, NULL, 10));
    else if (strcmp(method, "GET") == 0 && strcmp(path, "/") == 0)
        respond(c, 200, "text/plain", "ok\n", 0);
    else
        respond(c, 404, "text/plain", "not found\n", 0);
    return 1;
}

/* Consume body bytes already in c->in. */
static void eat_body(struct conn *c)
{
    size_t take = c->inlen < c->body_left ? c->inlen : (size_t)c->body_left;
    if (take) {
        if (c->hashing)
            EVP_DigestUpdate(c->md, c->in, take);
        memmove(c->in, c->in + take, c->inlen - take);
        c->inlen -= take;
        c->body_left -= take;
    }
    if (c->body_left == 0)
        finish_upload(c);
}

/* Advance the state machine as far as possible; return -1 to close. */
static int progress(struct conn *c)
{
    for (;;) {
        if (c->state == S_HEAD) {
            int r = parse_head(c);
            if (r <= 0)
                return r;
            continue;
        }
        if (c->state == S_BODY) {
            eat_body(c);
            if (c->state == S_BODY)
                return 0;
            continue;
        }
        /* S_WRITE */
        while (c->head_off < c->head_len || c->out_left) {
            struct iovec iov[2];
            int n = 0;
            if (c->head_off < c->head_len)
                iov[n++] = (struct iovec){c->head + c->head_off, c->head_len - c->head_off};
            if (c->out_left) {
                size_t k = c->out_left < MAXSEND ? (size_t)c->out_left : MAXSEND;
                iov[n++] = (struct iovec){pat + c->out_pos, k};
            }
            ssize_t w = writev(c->fd, iov, n);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    set_events(c, 1);
                    return 0;
                }
                if (errno == EINTR)
                    continue;
                return -1;
            }
            size_t hw = c->head_len - c->head_off;
            if ((size_t)w <= hw) {
                c->head_off += (size_t)w;
            } else {
                c->head_off = c->head_len;
                uint64_t bw = (uint64_t)w - hw;
                c->out_left -= bw;
                c->out_pos = (c->out_pos + bw) % plen;
            }
        }
        set_events(c, 0);
        if (c->close_after)
            return -1;
        c->state = S_HEAD;
        if (c->inlen == 0)
            return 0;
    }
}

static void on_readable(struct conn *c)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t r;
        if (c->state == S_BODY && c->inlen == 0) {
            /* Read the body straight into the buffer and hash it there. */
            size_t want = c->body_left < INBUF ? (size_t)c->body_left : INBUF;
            r = read(c->fd, c->in, want);
        } else if (c->state == S_WRITE) {
            /* Do not read more while a response is pending (back-pressure). */
            return;
        } else {
            if (c->inlen >= INBUF) {
                conn_free(c);
                return;
            }
            r = read(c->fd, c->in + c->inlen, INBUF - c->inlen);
        }
        if (r == 0) {
            conn_free(c);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            conn_free(c);
            return;
        }
        c->inlen += (size_t)r;
        if (progress(c) < 0) {
            conn_free(c);
            return;
        }
    }
}

static void serve(int lfd)
{
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                for (int k = 0; k < 256; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (progress(c) < 0) {
                    conn_free(c);
                    continue;
                }
            } else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                on_readable(c);
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: origin PATTERN_FILE [WORKERS]\n");
        return 2;
    }
    int workers = argc > 2 ? atoi(argv[2]) : 1;
    if (workers < 1)
        workers = 1;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0) {
        fprintf(stderr, "empty pattern file\n");
        return 1;
    }
    plen = (size_t)st.st_size;
    pat = malloc(plen + MAXSEND);
    if (!pat || fread(pat, 1, plen, f) != plen) {
        fprintf(stderr, "cannot read pattern\n");
        return 1;
    }
    fclose(f);
    for (size_t i = 0; i < MAXSEND; i++)
        pat[plen + i] = pat[i % plen];
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (int w = 1; w < workers; w++) {
        pid_t p = fork();
        if (p == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            break;
        }
    }
    serve(lfd);
    return 0;
}
