#ifndef SFTPLUA_CLIBSSH2_H
#define SFTPLUA_CLIBSSH2_H
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <stddef.h>

/* Macro forms Swift cannot import. */
LIBSSH2_SESSION *sl_ssh_session_init(void);
/* Keyboard-interactive login answering every prompt with `password`. */
int sl_ssh_userauth_kbdint(LIBSSH2_SESSION *s, const char *user, unsigned user_len, const char *password);
/* HMAC-SHA1 (known_hosts hashed names). out must hold 20 bytes. */
int sl_hmac_sha1(const unsigned char *key, size_t keylen, const unsigned char *data, size_t datalen, unsigned char *out);
/* Incremental SHA-256 (checksum compares). sl_sha256_new returns NULL on failure;
   sl_sha256_final writes 32 bytes and frees the context. */
void *sl_sha256_new(void);
int sl_sha256_update(void *ctx, const void *data, size_t len);
int sl_sha256_final(void *ctx, unsigned char *out);
void sl_sha256_free(void *ctx);
#endif
