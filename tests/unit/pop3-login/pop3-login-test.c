/* pop3-login-test.c — the shared fake of the POP3 login core's unit tests
 * (pop3-login-test.h). */
#include "pop3-login-test.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fake_send(void *ctx, const void *data, size_t len)
{
	struct fake *f = ctx;
	assert_int_equal(f->disconnects, 0);
	f->out = realloc(f->out, f->out_len + len + 1);
	memcpy(f->out + f->out_len, data, len);
	f->out_len += len;
	f->out[f->out_len] = '\0';
}

static void fake_auth_begin(void *ctx, const char *mech, const uint8_t *resp, size_t resp_len,
			    bool has_resp)
{
	struct fake *f = ctx;
	f->begins++;
	snprintf(f->mech, sizeof(f->mech), "%s", mech);
	assert_true(resp_len <= sizeof(f->resp));
	if (resp_len > 0)
		memcpy(f->resp, resp, resp_len);
	f->resp_len = resp_len;
	f->has_resp = has_resp;
	if (!has_resp)
		assert_int_equal(resp_len, 0);
	if (f->reply_sync)
		P->auth_reply(f->s, f->sync_result, NULL, 0, NULL);
}

static void fake_auth_continue(void *ctx, const uint8_t *resp, size_t resp_len)
{
	struct fake *f = ctx;
	f->continues++;
	assert_true(resp_len <= sizeof(f->cont));
	if (resp_len > 0)
		memcpy(f->cont, resp, resp_len);
	f->cont_len = resp_len;
}

static void fake_auth_abort(void *ctx)
{
	struct fake *f = ctx;
	f->aborts++;
}

static void fake_handoff(void *ctx, const char *tag, const uint8_t *preread, size_t len)
{
	struct fake *f = ctx;
	f->handoffs++;
	f->tag_was_null = tag == NULL;
	assert_true(len <= sizeof(f->preread));
	if (len > 0)
		memcpy(f->preread, preread, len);
	f->preread_len = len;
	f->out_len_at_handoff = f->out_len;
	if (f->fail_handoff_sync)
		P->handoff_failed(f->s, "Maximum number of connections");
}

static void fake_disconnect(void *ctx, const char *reason)
{
	struct fake *f = ctx;
	assert_non_null(reason);
	f->disconnects++;
	if (f->destroy_on_disconnect) {
		P->destroy(f->s);
		f->s = NULL;
	}
}

static void fake_starttls(void *ctx)
{
	struct fake *f = ctx;
	f->starttls++;
}

static void fake_forward(void *ctx, const char *key, const char *value)
{
	struct fake *f = ctx;
	size_t n = strlen(f->forwarded);
	snprintf(f->forwarded + n, sizeof(f->forwarded) - n, "%s=%s;", key, value);
}

const struct login_callbacks fake_cb = {
	.send = fake_send,
	.auth_begin = fake_auth_begin,
	.auth_continue = fake_auth_continue,
	.auth_abort = fake_auth_abort,
	.handoff = fake_handoff,
	.disconnect = fake_disconnect,
	.starttls = fake_starttls,
	.forward = fake_forward,
};

const struct login_proto_config cfg_default = {
	.greeting = "Dovecot ready.",
	.mechanisms = "PLAIN LOGIN",
	.secured = false,
	.plaintext_auth_allowed = true,
	.starttls_available = false,
};

struct fake *fake_new(const struct login_proto_config *cfg)
{
	struct fake *f = calloc(1, sizeof(*f));
	f->s = P->create(cfg, &fake_cb, f);
	assert_non_null(f->s);
	return f;
}

void fake_free(struct fake *f)
{
	if (f->s != NULL)
		P->destroy(f->s);
	free(f->out);
	free(f);
}

void fake_clear_out(struct fake *f)
{
	f->out_len = 0;
	if (f->out != NULL)
		f->out[0] = '\0';
}

void input(struct fake *f, const char *str)
{
	P->input(f->s, (const uint8_t *)str, strlen(str));
}

void input_n(struct fake *f, const void *data, size_t len)
{
	uint8_t *copy = malloc(len == 0 ? 1 : len);
	memcpy(copy, data, len);
	P->input(f->s, copy, len);
	free(copy);
}

void assert_out(struct fake *f, const char *expected)
{
	assert_non_null(f->out);
	assert_string_equal(f->out, expected);
	fake_clear_out(f);
}

/* Feeds script at every split and one byte at a time into fresh sessions;
 * the output must be the same each time. */
void check_script_n(const struct login_proto_config *cfg, const char *script,
			   size_t len, const char *expected, int expect_disconnects)
{
	for (size_t split = 0; split <= len + 1; split++) {
		struct fake *f = fake_new(cfg);
		fake_clear_out(f);
		if (split <= len) {
			input_n(f, script, split);
			if (f->s != NULL)
				input_n(f, script + split, len - split);
		} else {
			for (size_t i = 0; i < len && f->s != NULL; i++)
				input_n(f, script + i, 1);
		}
		assert_string_equal(f->out == NULL ? "" : f->out, expected);
		assert_int_equal(f->disconnects, expect_disconnects);
		fake_free(f);
	}
}

void check_script(const struct login_proto_config *cfg, const char *script,
			 const char *expected, int expect_disconnects)
{
	check_script_n(cfg, script, strlen(script), expected, expect_disconnects);
}
