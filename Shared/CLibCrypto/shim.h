// Swift's view of OpenSSL's libcrypto: only what the ring needs.
//
// The ring hashes member names and keys with MD5 because Ketama does; MD5 is
// used here for placement, never for security. OpenSSL 3 marks the low-level
// MD5_* functions as deprecated in favour of EVP, but they remain supported,
// and for short keys they are the fastest path: OpenSSL 3's one-shot MD5()
// goes through EVP_Q_digest and fetches the algorithm on every call, and an
// EVP context costs about twice the hash itself. The deprecation warning is
// suppressed for this header only.
//
// Why not swift-crypto's Insecure.MD5 (which would drop libssl-dev): a key's
// position through it costs 1.7 to 2.7 times as much. `make bench-md5`,
// 2026-12-02, 1M keys of 21 bytes, five runs: 118-165 ns per key here,
// 242-312 ns through swift-crypto. Every request is routed by this hash (in
// the client and again in the coordinator), and `ringctl ring owners` places
// millions of keys a second with it, so the shim stays.
#ifndef RINGSTORE_CLIBCRYPTO_SHIM_H
#define RINGSTORE_CLIBCRYPTO_SHIM_H

#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED 1
#endif

#include <stddef.h>
#include <openssl/md5.h>

/// Writes the 16-byte MD5 digest of `len` bytes at `data` into `out`.
static inline void ringstore_md5(const void *data, size_t len, unsigned char out[16]) {
    MD5_CTX context;
    MD5_Init(&context);
    MD5_Update(&context, data, len);
    MD5_Final(out, &context);
}

#endif
