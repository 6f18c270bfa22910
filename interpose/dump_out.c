#include "dump_out.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

__extension__ typedef unsigned __int128 u128;

static void drain(struct plk_out *o)
{
    size_t done = 0;
    while (done < o->len && !o->error) {
        ssize_t w = write(o->fd, o->buf + done, o->len - done);
        if (w > 0)
            done += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else
            o->error = w < 0 ? errno : EIO; // a write that made no progress
    }
    o->len = 0;
}

void plk_out_start(struct plk_out *o, int fd)
{
    o->fd = fd;
    o->error = 0;
    o->len = 0;
}

int plk_out_finish(struct plk_out *o)
{
    drain(o);
    return o->error;
}

void plk_out_mem(struct plk_out *o, const char *s, size_t n)
{
    while (n > 0 && !o->error) {
        size_t room = sizeof o->buf - o->len;
        if (room == 0) {
            drain(o);
            continue;
        }
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

void plk_out_str(struct plk_out *o, const char *s)
{
    plk_out_mem(o, s, strlen(s));
}

void plk_out_char(struct plk_out *o, char c)
{
    plk_out_mem(o, &c, 1);
}

size_t plk_fmt_u64(char *dst, size_t len, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t w = 0;
    while (n > 0 && w + 1 < len)
        dst[w++] = tmp[--n];
    if (len)
        dst[w] = '\0';
    return w;
}

size_t plk_fmt_hex(char *dst, size_t len, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[18];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    tmp[n++] = 'x';
    tmp[n++] = '0';
    size_t w = 0;
    while (n > 0 && w + 1 < len)
        dst[w++] = tmp[--n];
    if (len)
        dst[w] = '\0';
    return w;
}

void plk_out_u64(struct plk_out *o, uint64_t v)
{
    char b[24];
    plk_out_mem(o, b, plk_fmt_u64(b, sizeof b, v));
}

void plk_out_i64(struct plk_out *o, int64_t v)
{
    if (v < 0) {
        plk_out_char(o, '-');
        plk_out_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        plk_out_u64(o, (uint64_t)v);
    }
}

void plk_out_hex(struct plk_out *o, uint64_t v)
{
    char b[24];
    plk_out_mem(o, b, plk_fmt_hex(b, sizeof b, v));
}

// The length of the valid UTF-8 sequence at s (1..4), or 0 if invalid.
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    unsigned cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void plk_out_json_str(struct plk_out *o, const char *str)
{
    if (!str) {
        plk_out_str(o, "null");
        return;
    }
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    plk_out_char(o, '"');
    while (*s) {
        const unsigned char *run = s;
        size_t n;
        // Copy the longest run that needs no escape in one go.
        while (*s && *s != '"' && *s != '\\' && *s >= 0x20 && (n = utf8_len(s)) > 0)
            s += n;
        plk_out_mem(o, (const char *)run, (size_t)(s - run));
        if (!*s)
            break;
        if (*s == '"' || *s == '\\') {
            char e[2] = { '\\', (char)*s };
            plk_out_mem(o, e, 2);
        } else if (*s == '\n') {
            plk_out_str(o, "\\n");
        } else if (*s == '\t') {
            plk_out_str(o, "\\t");
        } else if (*s < 0x20) {
            char e[6] = { '\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 15] };
            plk_out_mem(o, e, 6);
        } else {
            plk_out_str(o, "\\ufffd"); // a byte that is not UTF-8
        }
        s++;
    }
    plk_out_char(o, '"');
}

// Display columns of a UTF-8 string: continuation bytes take none.
static int columns(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

void plk_out_spaces(struct plk_out *o, int n)
{
    static const char blanks[] = "                                ";
    while (n > 0) {
        int k = n < (int)sizeof blanks - 1 ? n : (int)sizeof blanks - 1;
        plk_out_mem(o, blanks, (size_t)k);
        n -= k;
    }
}

void plk_out_pad(struct plk_out *o, const char *s, int width)
{
    int w = columns(s);
    if (width > 0)
        plk_out_spaces(o, width - w);
    plk_out_str(o, s);
    if (width < 0)
        plk_out_spaces(o, -width - w);
}

// dst[0..len) gets "<int>.<frac>" where frac has `decimals` digits.
static size_t fixed(char *dst, size_t len, uint64_t value, uint64_t scale, int decimals)
{
    size_t n = plk_fmt_u64(dst, len, value / scale);
    if (decimals > 0 && n + 1 < len) {
        dst[n++] = '.';
        uint64_t frac = value % scale;
        for (uint64_t div = scale / 10; div > 0 && n + 1 < len; div /= 10) {
            dst[n++] = (char)('0' + frac / div);
            frac %= div;
        }
        dst[n] = '\0';
    }
    return n;
}

static uint64_t power10(int k)
{
    uint64_t p = 1;
    while (k-- > 0)
        p *= 10;
    return p;
}

size_t plk_fmt_pct(char *dst, size_t len, uint64_t num, uint64_t den, int decimals)
{
    uint64_t scale = power10(decimals);
    u128 v = ((u128)num * 100 * scale * 2 + den) / ((u128)den * 2); // rounded
    if (v > UINT64_MAX)
        v = UINT64_MAX;
    return fixed(dst, len, (uint64_t)v, scale, decimals);
}

// ns / step, rounded half up, without overflow.
static uint64_t div_round(uint64_t ns, uint64_t step)
{
    return ns / step + (ns % step >= step - step / 2);
}

size_t plk_fmt_duration(char *dst, size_t len, uint64_t ns)
{
    static const struct {
        uint64_t unit;
        const char *name;
    } units[] = { { 1000, " µs" }, { 1000000, " ms" }, { 1000000000, " s" } };
    if (ns < 1000) {
        size_t n = plk_fmt_u64(dst, len, ns);
        return n + plk_fmt_cat(dst + n, len - n, " ns", NULL);
    }
    // Three significant digits in the smallest unit that holds them after
    // rounding: 1.00 µs, 99.9 µs, 100 µs, 1.00 ms ... 1.83 s, 100 s, 1234 s.
    size_t last = sizeof units / sizeof units[0] - 1;
    for (size_t i = 0; i <= last; i++) {
        for (int decimals = 2; decimals >= 0; decimals--) {
            uint64_t scale = power10(decimals);
            uint64_t v = div_round(ns, units[i].unit / scale);
            bool fits = v < 1000 || (i == last && decimals == 0);
            if (fits && (v >= 100 || decimals == 0)) {
                size_t n = fixed(dst, len, v, scale, decimals);
                return n + plk_fmt_cat(dst + n, len - n, units[i].name, NULL);
            }
        }
    }
    return 0; // not reached: the last unit takes any value
}

size_t plk_fmt_cat(char *dst, size_t len, const char *first, ...)
{
    size_t n = 0;
    while (n < len && dst[n])
        n++;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        while (*s && n + 1 < len)
            dst[n++] = *s++;
    va_end(ap);
    if (n < len)
        dst[n] = '\0';
    return n;
}
