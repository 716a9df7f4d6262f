/* imap-login-texts.c — the greeting, mechanism list and CAPABILITY variants
 * every IMAP pre-login session of the process shares (imap-login-texts.h).
 * A session used to copy and build them itself: three allocations and
 * ~250 bytes held per idle connection. */
#include "login/imap-login-texts.h"

#include <string.h>

#include "lib/alloc.h"

struct imap_texts {
	unsigned refcount;
	/* the configuration's text as given: what the next session is
	 * compared with */
	char *greeting_src, *mechanisms_src;
	char *greeting, *mechanisms;
	/* by starttls | plaintext_auth << 1 | tls << 2, built on first use */
	char *capability[8];
};

/* the texts of the configuration seen last; holds a reference */
static struct imap_texts *texts_current;

bool imap_mech_is_plaintext(const char *mech, size_t len)
{
	/* OAuth2 bearer tokens are as replayable as passwords (Dovecot
	   flags OAUTHBEARER and XOAUTH2 MECH_SEC_PLAINTEXT too) */
	return (len == 5 && strncmp(mech, "PLAIN", 5) == 0) ||
	       (len == 5 && strncmp(mech, "LOGIN", 5) == 0) ||
	       (len == 11 && strncmp(mech, "OAUTHBEARER", 11) == 0) ||
	       (len == 7 && strncmp(mech, "XOAUTH2", 7) == 0);
}

bool imap_mech_needs_tls(const char *mech, size_t len)
{
	return len > 5 && strncmp(mech + len - 5, "-PLUS", 5) == 0;
}

char *imap_sanitize_dup(const char *text)
{
	char *ret = rg_strdup(text == NULL ? "" : text);
	for (char *c = ret; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	}
	return ret;
}

/* append src to out[*n..cap) (cap counts the NUL, and is large enough) */
static void cap_append(char *out, size_t *n, const char *src, size_t len)
{
	memcpy(out + *n, src, len);
	*n += len;
	out[*n] = '\0';
}

static char *build_capability(const char *mechanisms, bool starttls, bool plaintext_auth, bool tls)
{
	size_t cap = sizeof(IMAP_CAPABILITY_BANNER) + 32 + strlen(mechanisms) * 2 + 8;
	char *out = rg_malloc(cap);
	size_t n = 0;
	cap_append(out, &n, IMAP_CAPABILITY_BANNER, sizeof(IMAP_CAPABILITY_BANNER) - 1);
	if (starttls)
		cap_append(out, &n, " STARTTLS", 9);
	if (!plaintext_auth)
		cap_append(out, &n, " LOGINDISABLED", 14);
	const char *p = mechanisms;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (len == 0)
			break;
		/* like Dovecot: plaintext mechanisms are hidden when refused */
		if ((plaintext_auth || !imap_mech_is_plaintext(p, len)) &&
		    (tls || !imap_mech_needs_tls(p, len))) {
			cap_append(out, &n, " AUTH=", 6);
			cap_append(out, &n, p, len);
		}
		p += len;
	}
	return out;
}

struct imap_texts *imap_texts_get(const char *greeting, const char *mechanisms)
{
	if (greeting == NULL)
		greeting = IMAP_DEFAULT_GREETING;
	if (mechanisms == NULL)
		mechanisms = "";
	struct imap_texts *t = texts_current;
	if (t == NULL || strcmp(t->greeting_src, greeting) != 0 ||
	    strcmp(t->mechanisms_src, mechanisms) != 0) {
		/* another configuration (a reload): sessions that hold the
		 * old texts keep them */
		imap_texts_unref(&texts_current);
		t = rg_calloc(1, sizeof(*t));
		t->refcount = 1;
		t->greeting_src = rg_strdup(greeting);
		t->mechanisms_src = rg_strdup(mechanisms);
		t->greeting = imap_sanitize_dup(greeting);
		t->mechanisms = imap_sanitize_dup(mechanisms);
		texts_current = t;
	}
	t->refcount++;
	return t;
}

void imap_texts_unref(struct imap_texts **_texts)
{
	struct imap_texts *t = *_texts;

	if (t == NULL)
		return;
	*_texts = NULL;
	if (--t->refcount > 0)
		return;
	for (size_t i = 0; i < sizeof(t->capability) / sizeof(t->capability[0]); i++)
		rg_free(t->capability[i]);
	rg_free(t->greeting_src);
	rg_free(t->mechanisms_src);
	rg_free(t->greeting);
	rg_free(t->mechanisms);
	rg_free(t);
}

const char *imap_texts_greeting(const struct imap_texts *texts)
{
	return texts->greeting;
}

const char *imap_texts_mechanisms(const struct imap_texts *texts)
{
	return texts->mechanisms;
}

const char *imap_texts_capability(struct imap_texts *texts, bool starttls, bool plaintext_auth,
				  bool tls)
{
	unsigned i = (starttls ? 1u : 0u) | (plaintext_auth ? 2u : 0u) | (tls ? 4u : 0u);
	if (texts->capability[i] == NULL)
		texts->capability[i] = build_capability(texts->mechanisms, starttls,
							plaintext_auth, tls);
	return texts->capability[i];
}
