// Swift's view of OpenSSL's libcrypto: only what the ring needs, and SHA-256
// for the checksums of backups.
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
#include <openssl/evp.h>
#include <openssl/md5.h>

/// Writes the 16-byte MD5 digest of `len` bytes at `data` into `out`.
static inline void ringstore_md5(const void *data, size_t len, unsigned char out[16]) {
    MD5_CTX context;
    MD5_Init(&context);
    MD5_Update(&context, data, len);
    MD5_Final(out, &context);
}

// SHA-256 through EVP, OpenSSL 3's supported interface (the checksums of
// backup files: megabytes at a time, so the context's cost does not matter).
// The context is opaque to Swift; `ringstore_sha256_new` returns NULL when
// OpenSSL cannot make one.

/// A new SHA-256 context, ready for updates; free it with `ringstore_sha256_free`.
static inline void *ringstore_sha256_new(void) {
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (context == NULL) return NULL;
    if (EVP_DigestInit_ex(context, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(context);
        return NULL;
    }
    return context;
}

/// Hashes `len` more bytes at `data`; 1 on success.
static inline int ringstore_sha256_update(void *context, const void *data, size_t len) {
    return EVP_DigestUpdate((EVP_MD_CTX *)context, data, len);
}

/// Writes the 32-byte digest into `out`; 1 on success. The context is spent.
static inline int ringstore_sha256_final(void *context, unsigned char out[32]) {
    unsigned int length = 0;
    int ok = EVP_DigestFinal_ex((EVP_MD_CTX *)context, out, &length);
    return ok == 1 && length == 32;
}

static inline void ringstore_sha256_free(void *context) {
    EVP_MD_CTX_free((EVP_MD_CTX *)context);
}

#endif
