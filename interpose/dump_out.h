// A buffered writer for the profile dumps: one fixed buffer, write(2) only,
// no malloc, no stdio, nothing that is not async-signal-safe, so the signal
// dump can use it too. It remembers the first write error; everything after
// it is dropped, and plk_out_finish reports it.
//
// Example usage:
//   static struct plk_out out;
//   plk_out_start(&out, fd);
//   plk_out_str(&out, "{\"pid\":");
//   plk_out_u64(&out, getpid());
//   plk_out_char(&out, '}');
//   int err = plk_out_finish(&out); // 0, or the errno of the first failure
#ifndef PLK_DUMP_OUT_H
#define PLK_DUMP_OUT_H

#include <stddef.h>
#include <stdint.h>

#define PLK_OUT_BUFSIZE 65536

struct plk_out {
    int fd;
    int error;  // errno of the first failed write; EIO for one that wrote nothing
    size_t len; // bytes waiting in buf
    char buf[PLK_OUT_BUFSIZE];
};

void plk_out_start(struct plk_out *o, int fd);

// Writes what is buffered; returns the first error seen (0: all written).
int plk_out_finish(struct plk_out *o);

void plk_out_mem(struct plk_out *o, const char *s, size_t n);
void plk_out_str(struct plk_out *o, const char *s);
void plk_out_char(struct plk_out *o, char c);
void plk_out_u64(struct plk_out *o, uint64_t v);
void plk_out_i64(struct plk_out *o, int64_t v);
// "0x" and lower-case hex digits, as the JSON addresses.
void plk_out_hex(struct plk_out *o, uint64_t v);
// A JSON string with its quotes (null for NULL): control characters and
// invalid UTF-8 are escaped, so the document stays valid whatever the bytes.
void plk_out_json_str(struct plk_out *o, const char *s);
// `s` padded with spaces to `width` display columns: right-aligned when
// width > 0, left-aligned when width < 0. UTF-8 sequences count as one column.
void plk_out_pad(struct plk_out *o, const char *s, int width);
// `n` spaces.
void plk_out_spaces(struct plk_out *o, int n);

// Formatting into a caller's buffer (NUL-terminated; `len` includes the
// NUL). Each returns the length written, truncating if needed.
size_t plk_fmt_u64(char *dst, size_t len, uint64_t v);
size_t plk_fmt_hex(char *dst, size_t len, uint64_t v);
// 100 * num / den with `decimals` digits after the point, rounded
// ("0.425"); den must not be 0.
size_t plk_fmt_pct(char *dst, size_t len, uint64_t num, uint64_t den, int decimals);
// A duration for people: "850 ns", "12.3 µs", "20.1 ms", "1.83 s".
size_t plk_fmt_duration(char *dst, size_t len, uint64_t ns);

// Appends strings (up to NULL) to dst[0..len) after its current contents.
size_t plk_fmt_cat(char *dst, size_t len, const char *first, ...)
    __attribute__((sentinel));

#endif
