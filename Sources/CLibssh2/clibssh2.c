#include "clibssh2.h"
#include <stdlib.h>
#include <string.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>

LIBSSH2_SESSION *sl_ssh_session_init(void) { return libssh2_session_init_ex(NULL, NULL, NULL, NULL); }

/* The password for the kbd-interactive callback travels through the session's abstract pointer. */
static void sl_kbdint_cb(const char *name, int name_len, const char *instruction, int instruction_len,
                         int num_prompts, const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
                         LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract) {
    const char *password = abstract ? (const char *)*abstract : NULL;
    int i;
    (void)name; (void)name_len; (void)instruction; (void)instruction_len; (void)prompts;
    for (i = 0; i < num_prompts; i++) {
        if (password) {
            size_t n = strlen(password);
            responses[i].text = malloc(n + 1);
            if (responses[i].text) memcpy(responses[i].text, password, n + 1);
            responses[i].length = responses[i].text ? (unsigned)n : 0;
        } else {
            responses[i].text = NULL;
            responses[i].length = 0;
        }
    }
}

int sl_ssh_userauth_kbdint(LIBSSH2_SESSION *s, const char *user, unsigned user_len, const char *password) {
    void **abstract = libssh2_session_abstract(s);
    void *saved = *abstract;
    int rc;
    *abstract = (void *)password;
    rc = libssh2_userauth_keyboard_interactive_ex(s, user, user_len, sl_kbdint_cb);
    *abstract = saved;
    return rc;
}

int sl_hmac_sha1(const unsigned char *key, size_t keylen, const unsigned char *data, size_t datalen, unsigned char *out) {
    unsigned int outlen = 0;
    return HMAC(EVP_sha1(), key, (int)keylen, data, datalen, out, &outlen) != NULL && outlen == 20;
}

void *sl_sha256_new(void) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(c); return NULL; }
    return c;
}
int sl_sha256_update(void *ctx, const void *data, size_t len) {
    return EVP_DigestUpdate((EVP_MD_CTX *)ctx, data, len) == 1;
}
int sl_sha256_final(void *ctx, unsigned char *out) {
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex((EVP_MD_CTX *)ctx, out, &n) == 1 && n == 32;
    EVP_MD_CTX_free((EVP_MD_CTX *)ctx);
    return ok;
}
void sl_sha256_free(void *ctx) { EVP_MD_CTX_free((EVP_MD_CTX *)ctx); }
