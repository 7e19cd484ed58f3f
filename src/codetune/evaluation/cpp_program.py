"""The C++ program builder: a HumanEval-X C++ sample compiled with g++, then run (the proof: see `programs`).

The sample (prompt + completion + test) is one translation unit; the harness's `main` is another, so no
macro the completion defines can reach it. The test's `main` is renamed to a per-run random name and
made to `return 0` at its end (it may fall off it, which only `main` may do); the harness's `main` calls
it and only when it returns 0 prints the token. The nonce was read from stdin before any code of the
completion ran (from `.preinit_array`, ahead of all static constructors), and stdin is /dev/null from
then on. So `exit(0)`, `quick_exit`, `_Exit` or `abort` from the completion end without the token, and
reading stdin gives it nothing.

`assert` stays live: `NDEBUG` is undefined and `<cassert>` is included again right before the test (it
redefines `assert` on every inclusion, undoing a completion's `#define assert`), and nothing is compiled
with `-DNDEBUG`. A failed `assert` prints glibc's "Assertion `...' failed." and aborts.

Not covered (as for the other languages, see `programs`): a completion that redefines, by macro, a name
the test calls, or native code that finds the nonce in its own memory (/proc/self/mem, the symbol
`codetune_nonce`) or puts its own function in `.preinit_array` ahead of the harness's by link tricks.
"""

from __future__ import annotations

import hashlib
import re

from codetune.evaluation.benchmarks import Task
from codetune.evaluation.programs import Program, Step, _limits
from codetune.evaluation.sandbox import Limits
from codetune.stopping import find_brace_end

# Headers the HumanEval-X solutions use beyond those their prompts include (the benchmark's own
# harness prepends such a list as well); boost is not among them, so the two tasks that need it fail.
_HEADERS = (
    "algorithm climits cmath cstdio cstdlib cstring functional iostream map math.h numeric queue set sstream "
    "stack stdio.h stdlib.h string unordered_map unordered_set vector deque list"
).split()
_PRELUDE = "".join(f"#include <{h}>\n" for h in _HEADERS)
_TEST_MAIN = re.compile(r"\bint\s+main\s*\(\s*(?:void)?\s*\)\s*\{")

# SHA-256 of "codetune:" + the nonce, printed after the test's main returned 0. The nonce is read from
# stdin (which becomes /dev/null) by a function in .preinit_array: it runs before every static
# constructor, so before any code of the completion (this file is linked first, so its entry is first).
_RUNNER = r"""#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <iostream>
#include <string>
#include <unistd.h>

int TEST_MAIN();

static char codetune_nonce[256];
static size_t codetune_nonce_len = 0;

static void codetune_take_nonce(int, char**, char**) {
    ssize_t n;
    while (codetune_nonce_len < sizeof(codetune_nonce) - 1
           && (n = read(0, codetune_nonce + codetune_nonce_len, sizeof(codetune_nonce) - 1 - codetune_nonce_len)) > 0)
        codetune_nonce_len += (size_t)n;
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 0);
        close(fd);
    } else {
        close(0);
    }
}

__attribute__((section(".preinit_array"), used)) static void (*codetune_preinit)(int, char**, char**) =
    codetune_take_nonce;

static std::string codetune_sha256(const std::string& msg) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::string m = msg;
    uint64_t bits = (uint64_t)msg.size() * 8;
    m += (char)0x80;
    while (m.size() % 64 != 56) m += (char)0;
    for (int i = 7; i >= 0; --i) m += (char)((bits >> (8 * i)) & 0xff);
    auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
    for (size_t off = 0; off < m.size(); off += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = ((uint32_t)(unsigned char)m[off + 4 * i] << 24)
                 | ((uint32_t)(unsigned char)m[off + 4 * i + 1] << 16)
                 | ((uint32_t)(unsigned char)m[off + 4 * i + 2] << 8)
                 | (uint32_t)(unsigned char)m[off + 4 * i + 3];
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    char out[65];
    for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[i]);
    return std::string(out, 64);
}

int main() {
    int rc = TEST_MAIN();
    if (rc != 0) return rc;
    std::string nonce(codetune_nonce, codetune_nonce_len);
    size_t a = nonce.find_first_not_of(" \t\r\n"), b = nonce.find_last_not_of(" \t\r\n");
    nonce = a == std::string::npos ? "" : nonce.substr(a, b - a + 1);
    std::cout << std::flush;
    std::printf("\n%s\n", codetune_sha256("codetune:" + nonce).c_str());
    std::fflush(stdout);
    return 0;
}
"""


def _rename_test_main(test: str, name: str) -> str:
    """The test with its `int main()` renamed to `name` and a `return 0;` before the closing brace."""
    m = _TEST_MAIN.search(test)
    if m is None:
        return test  # no main: the link fails and the sample is a compile_error
    end = find_brace_end("cpp", test[: m.end()], test[m.end() :])
    if end is None:
        return test
    close = m.end() + end - 1  # index of the closing brace
    return f"{test[: m.start()]}int {name}() {{{test[m.end() : close]}\nreturn 0;\n}}{test[close + 1 :]}"


def build_cpp(task: Task, completion: str, nonce: str, limits: Limits, tools: dict) -> Program:
    """Compile `prompt + completion + test` with the harness's `main` (g++), then run it, nonce on stdin."""
    tag = hashlib.sha256(f"tag:{nonce}".encode()).hexdigest()[:12]  # unguessable name, per run
    test_main = f"codetune_test_main_{tag}"
    test = _rename_test_main(task.test, test_main)
    src = f"{_PRELUDE}{task.prompt}{completion}\n\n#undef NDEBUG\n#include <cassert>\n{test}\n"
    compile_limits = _limits(
        limits,
        wall_s=max(limits.wall_s, 60.0),
        cpu_s=max(limits.cpu_s, 60.0),
        memory_mb=max(limits.memory_mb, 1024),
        address_space_mb=None,
        processes=max(limits.processes, 64),
    )
    gxx = [tools["g++"], "-std=c++17", "-O1", "-w", "-UNDEBUG", "-o", "program"]
    gxx += ["codetune_main.cpp", "sample.cpp"]  # the harness's .preinit_array entry first
    if "openssl/" in src:  # HumanEval-X's md5 task; linked only when asked so no other sample needs libcrypto
        gxx.append("-lcrypto")
    return Program(
        {"sample.cpp": src, "codetune_main.cpp": _RUNNER.replace("TEST_MAIN", test_main)},
        [Step("compile", gxx, compile_limits), Step("run", ["./program"], limits, stdin=nonce.encode())],
        failed_pattern="Assertion `",
        # g++ ends with "compilation terminated." or collect2's summary; the first error says what failed.
        compile_error_line=r"^.*\b(?:fatal )?error: .*$|^.*undefined reference to .*$",
    )
